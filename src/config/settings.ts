import type Conf from 'conf';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BrokerError } from '../errors.ts';
import { ensureHome, SETTINGS_FILE } from './home.ts';

/** Everything `broker init` records. Stored 0600 in BROKER_HOME. */
export interface Settings {
  clientId: string;
  /** May be absent from the file when the secret comes from BROKER_CLIENT_SECRET. */
  clientSecret?: string;
  tenant: string;
  authority: string;
  publicUrl: string;
  listen: string;
  passcodeHash: string;
  allowedOrigins: string[];
  /** YYYY-MM-DD, as shown in the Entra portal; used for expiry warnings. */
  secretExpires?: string;
  /** PEM files for serving HTTPS directly (re-read on SIGHUP). */
  tlsCert?: string;
  tlsKey?: string;
  /** Allow a plain-http public URL that is not localhost (someone else terminates TLS, or a test lab). */
  insecureHttp?: boolean;
  logFormat?: 'text' | 'json';
  /** Serve /metrics on the main listener. */
  metrics?: boolean;
  /** Serve /metrics on this separate HOST:PORT instead. */
  metricsListen?: string;
  /** A reverse proxy on this machine sets X-Forwarded-For. */
  trustProxy?: boolean;
}

export const DEFAULTS = {
  tenant: 'consumers',
  authority: 'https://login.microsoftonline.com',
  listen: '127.0.0.1:8080',
  // Duplicati's web UI, where its popup expects the `authid:` message from.
  allowedOrigins: ['http://localhost:8200', 'http://127.0.0.1:8200'],
} as const;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function validateClientId(v: string): string | null {
  return GUID.test(v) ? null : 'must be the Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000';
}

export function validateClientSecret(v: string): string | null {
  if (!v) return 'is empty';
  // The portal shows both the secret's ID (a GUID) and its Value; only the Value works.
  if (GUID.test(v.trim())) return "looks like the secret's ID (a GUID); copy the secret's Value instead";
  if (v.length > 1024 || /[\r\n]/.test(v)) return 'must be one line';
  return null;
}

export function validateTenant(v: string): string | null {
  if (['common', 'organizations', 'consumers'].includes(v) || GUID.test(v) || /^[a-z0-9][a-z0-9.-]*\.[a-z]{2,}$/i.test(v)) return null;
  return 'must be consumers, common, organizations, a tenant id (GUID) or a tenant domain';
}

/** Hosts Microsoft accepts in an http:// redirect URI (the URL parser lowercases and brackets them). */
/** Hosts Microsoft accepts in http:// redirect URIs (IPv6 [::1] is not supported there). */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1']);

/** A public URL Microsoft refuses as a redirect base (http:// elsewhere than localhost), and on which AuthIDs cross the network readable. */
export function isPlainHttpBeyondLocalhost(u: URL): boolean {
  return u.protocol === 'http:' && !LOOPBACK_HOSTS.has(u.hostname);
}

export function validateHttpUrl(v: string, what: 'public-url' | 'authority', opts: { allowInsecureHttp?: boolean } = {}): string | null {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must start with https:// (or http:// for localhost)';
  if (u.search || u.hash) return 'must not have a query or fragment';
  if (u.username || u.password) return 'must not contain a user name or password';
  if (what === 'public-url' && u.pathname !== '/' && u.pathname !== '') {
    return 'must be the root of a host (Duplicati drops the path when it builds its login link)';
  }
  // The app secret is sent there: in clear only to a test provider on this machine.
  if (what === 'authority' && u.protocol === 'http:' && !LOOPBACK_HOSTS.has(u.hostname) && !/^127\./.test(u.hostname)) {
    return 'must use https:// (the app secret is sent there); http:// only for a local test provider on localhost or 127.x.x.x';
  }
  // The redirect URI is {public-url}/logged-in, and Microsoft refuses http:// ones except on localhost.
  if (what === 'public-url' && isPlainHttpBeyondLocalhost(u) && !opts.allowInsecureHttp) {
    return 'must use HTTPS: Microsoft accepts http:// redirect URIs only for localhost (localhost and 127.0.0.1 are allowed); use an https:// URL (e.g. behind a reverse proxy), or keep http://localhost:PORT and connect with `broker connect` or an SSH tunnel';
  }
  return null;
}

export function validateListen(v: string): string | null {
  const m = /^(\[[0-9a-f:]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(v);
  if (!m || Number(m[2]) > 65535) return 'must be HOST:PORT, like 127.0.0.1:8080';
  return null;
}

export function validateOrigin(v: string): string | null {
  try {
    const u = new URL(v);
    if (u.origin !== v.replace(/\/$/, '')) return 'must be an origin like http://localhost:8200 (no path)';
    return null;
  } catch {
    return 'is not an origin like http://localhost:8200';
  }
}

export function normaliseUrl(v: string): string {
  return v.trim().replace(/\/+$/, '');
}

/** Every problem at once, each naming its setting: a person fixes them in one go. */
export function validateSettings(s: Partial<Settings>, opts: { requireSecret: boolean; allowInsecureHttp?: boolean }): string[] {
  const problems: string[] = [];
  const check = (name: string, value: unknown, fn: (v: string) => string | null) => {
    if (typeof value !== 'string' || value === '') problems.push(`${name} is missing`);
    else {
      const p = fn(value);
      if (p) problems.push(`${name} ${p}`);
    }
  };
  check('client-id', s.clientId, validateClientId);
  if (opts.requireSecret || s.clientSecret !== undefined) check('client-secret', s.clientSecret, validateClientSecret);
  check('tenant', s.tenant, validateTenant);
  check('authority', s.authority, (v) => validateHttpUrl(v, 'authority'));
  const allowInsecureHttp = Boolean(opts.allowInsecureHttp || s.insecureHttp);
  check('public-url', s.publicUrl, (v) => validateHttpUrl(v, 'public-url', { allowInsecureHttp }));
  check('listen', s.listen, validateListen);
  if (typeof s.passcodeHash !== 'string' || !s.passcodeHash.startsWith('$argon2')) problems.push('passcode is missing (run `broker init`)');
  for (const o of s.allowedOrigins ?? []) {
    const p = validateOrigin(o);
    if (p) problems.push(`allowed-origin ${o.slice(0, 80)} ${p}`);
  }
  if (s.secretExpires !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(s.secretExpires)) problems.push('secret-expires must be a date YYYY-MM-DD');
  if (Boolean(s.tlsCert) !== Boolean(s.tlsKey)) problems.push('tls-cert and tls-key go together');
  if (s.metricsListen !== undefined && validateListen(s.metricsListen)) problems.push(`metrics-listen ${validateListen(s.metricsListen)}`);
  if (s.logFormat !== undefined && s.logFormat !== 'text' && s.logFormat !== 'json') problems.push('log-format must be text or json');
  return problems;
}

function store(home: string): Conf<Settings> {
  // Loaded only to write: reading is a JSON.parse, and conf (with ajv) costs ~10 ms of start-up.
  const { default: Conf } = require('conf') as typeof import('conf');
  return new Conf<Settings>({
    cwd: home,
    configName: SETTINGS_FILE.replace(/\.json$/, ''),
    projectSuffix: '',
    configFileMode: 0o600,
    // No schema/migrations: we validate ourselves, with messages that name flags.
    clearInvalidConfig: false,
  });
}

export function settingsExist(home: string): boolean {
  return existsSync(join(home, SETTINGS_FILE));
}

export function readSettings(home: string): Partial<Settings> {
  if (!settingsExist(home)) return {};
  try {
    return JSON.parse(readFileSync(join(home, SETTINGS_FILE), 'utf8')) as Partial<Settings>;
  } catch (e) {
    throw new BrokerError('config_invalid', `The settings file ${join(home, SETTINGS_FILE)} cannot be read.`, {
      cause: e,
      hint: 'Fix or remove it and run `broker init` again.',
    });
  }
}

export const CLIENT_SECRET_CREDENTIAL = 'client-secret';

/**
 * A systemd credential: $CREDENTIALS_DIRECTORY/<name>, set up by LoadCredential=
 * and readable only by the service. Undefined when there is none.
 */
function readCredential(env: Record<string, string | undefined>, name: string): string | undefined {
  if (!env.CREDENTIALS_DIRECTORY) return undefined;
  const path = join(env.CREDENTIALS_DIRECTORY, name);
  if (!existsSync(path)) return undefined;
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new BrokerError('config_invalid', `Cannot read the credential ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`, {
      cause: e,
      hint: 'Check LoadCredential= in the unit (`broker service install --credential-file PATH`).',
    });
  }
}

/** Loads and validates the settings; the app secret may come from the environment or a systemd credential instead. */
export function loadSettings(home: string, env: Record<string, string | undefined>): Settings {
  if (!settingsExist(home)) {
    throw new BrokerError('config_missing', `No settings in ${home}.`, { hint: 'Run `broker init` first (or set BROKER_HOME).' });
  }
  const s = readSettings(home);
  // The app secret, first source wins: BROKER_CLIENT_SECRET, then the systemd
  // credential `client-secret` (LoadCredential=, see `broker service install
  // --credential-file`), then settings.json.
  if (env.BROKER_CLIENT_SECRET) s.clientSecret = env.BROKER_CLIENT_SECRET;
  else s.clientSecret = readCredential(env, CLIENT_SECRET_CREDENTIAL) ?? s.clientSecret;
  s.allowedOrigins ??= [...DEFAULTS.allowedOrigins];
  // Plain http on another host is refused by `serve` and `doctor` themselves (checkPublicUrl), which know --insecure-http.
  const problems = validateSettings(s, { requireSecret: true, allowInsecureHttp: true });
  if (problems.length) {
    throw new BrokerError('config_invalid', `The settings in ${join(home, SETTINGS_FILE)} are incomplete: ${problems.join('; ')}.`, {
      hint: 'Run `broker init` again to fix them.',
    });
  }
  return s as Settings;
}

export function writeSettings(home: string, s: Settings): void {
  ensureHome(home);
  try {
    const c = store(home);
    c.store = s;
  } catch (e) {
    throw new BrokerError('store_error', `Cannot write the settings in ${home}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`, {
      cause: e,
      hint: 'Check permissions and free space in BROKER_HOME; the old settings are unchanged.',
    });
  }
}
