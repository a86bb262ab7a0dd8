import type Conf from 'conf';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BrokerError } from '../errors.ts';
import { otherApps } from './apps.ts';
import { ensureHome, SETTINGS_FILE } from './home.ts';
import { PROVIDER_IDS, type ProviderApp, type ProviderId } from '../oauth/providers.ts';
import { defaultOf, displayName, envValue, OPTION_LIST, OPTIONS, type OptionSpec } from './options.ts';
import { validateClientSecret, validateDate, validateHttpUrl } from './validate.ts';

// The single-value checks live in validate.ts, otherApps in apps.ts (for `broker list`, which loads nothing else of this); re-exported for the code and tests that import them from here.
export * from './validate.ts';
export { otherApps };

/** The owner's app at a provider other than Microsoft (`broker init --provider NAME`): Microsoft's own fields stay top-level. */
export type ProviderSettings = Omit<ProviderApp, 'authority' | 'tenant'>;

export type OtherProviderId = Exclude<ProviderId, 'microsoft'>;

/**
 * Everything `broker init` records. Stored 0600 in BROKER_HOME. Microsoft's app
 * keeps the top-level fields it always had (clientId, clientSecret, tenant,
 * authority, secretExpires), so older settings files are read as they are; the
 * other providers' apps are under `providers`.
 */
export interface Settings {
  /** Microsoft's app; empty or absent when the broker has none (then `providers` has one). */
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
  /** Notification targets (src/notify). */
  notifyUrls?: string[];
  notifyFormat?: 'json' | 'ntfy' | 'text';
  notifyCommand?: string;
  notifyAll?: boolean;
  /** A reverse proxy on this machine sets X-Forwarded-For. */
  trustProxy?: boolean;
  /** postgres://… : the store in PostgreSQL instead of BROKER_HOME's SQLite file. */
  databaseUrl?: string;
  databasePasswordFile?: string;
  /** One app per provider other than Microsoft. */
  providers?: Partial<Record<OtherProviderId, ProviderSettings>>;
}

/** The problems of the other providers' apps, each naming the provider. */
function providerProblems(s: Partial<Settings>): string[] {
  const out: string[] = [];
  for (const id of otherApps(s)) {
    if (!(PROVIDER_IDS as string[]).includes(id) || id === ('microsoft' as string)) {
      out.push(`providers.${String(id).slice(0, 20)} is not a provider (${PROVIDER_IDS.filter((p) => p !== 'microsoft').join(', ')})`);
      continue;
    }
    const a = s.providers![id]!;
    if (typeof a.clientId !== 'string' || !/^\S{1,256}$/.test(a.clientId)) out.push(`${id} client-id is missing or not one word`);
    const secret = typeof a.clientSecret === 'string' ? validateClientSecret(a.clientSecret) : 'is missing';
    if (secret) out.push(`${id} client-secret ${secret}`);
    for (const [key, flag] of [
      ['authorizeUrl', 'authorize-url'],
      ['tokenUrl', 'token-url'],
      ['revokeUrl', 'revoke-url'],
    ] as const) {
      const v = a[key];
      const p = v === undefined ? null : typeof v === 'string' ? validateHttpUrl(v, 'authority') : 'must be text';
      if (p) out.push(`${id} ${flag} ${p}`);
    }
    if (a.secretExpires !== undefined && validateDate(a.secretExpires)) out.push(`${id} secret-expires ${validateDate(a.secretExpires)}`);
  }
  return out;
}

/** The check of one value: the option's own, or its list of choices. */
function checkOf(o: OptionSpec): OptionSpec['check'] {
  const choices = o.choices;
  return o.check ?? (choices && ((v) => (choices.includes(v) ? null : `must be ${choices.join(' or ')}`)));
}

/** Every problem at once, each naming its setting: a person fixes them in one go. */
export function validateSettings(s: Partial<Settings>, opts: { requireSecret: boolean; allowInsecureHttp?: boolean }): string[] {
  const problems: string[] = [];
  const ctx = { allowInsecureHttp: Boolean(opts.allowInsecureHttp || s.insecureHttp) };
  for (const o of OPTION_LIST) {
    const check = checkOf(o);
    if (o.stored === false || !check) continue;
    const name = displayName(o);
    const value = s[o.name as keyof Settings];
    // The secret may come from BROKER_CLIENT_SECRET or a credential instead of the file;
    // Microsoft's app is optional when another provider has one.
    const microsoftApp = o.name === 'clientId' || o.name === 'clientSecret';
    if (microsoftApp && !s.clientId && otherApps(s).length > 0) continue;
    const required = o.required && (o.name !== 'clientSecret' || opts.requireSecret || value !== undefined);
    if (value === undefined && !required) continue;
    if (o.repeatable) {
      const values = Array.isArray(value) ? value : [];
      values.forEach((v, i) => {
        const p = check(String(v), ctx);
        // A secret one is named by its position (this text is logged on reload); others by value, shortened.
        if (p) problems.push(`${name} ${o.secret ? `(${ordinal(i + 1)} of ${values.length})` : String(v).slice(0, 80)} ${p}`);
      });
    } else if (typeof value !== 'string' || (required && value === '')) {
      problems.push(`${name} ${required ? 'is missing' : 'must be text'}`);
    } else {
      const p = check(value, ctx);
      if (p) problems.push(`${name} ${p}`);
    }
  }
  problems.push(...providerProblems(s));
  if (typeof s.passcodeHash !== 'string' || !s.passcodeHash.startsWith('$argon2')) problems.push('passcode is missing (run `broker init`)');
  if (Boolean(s.tlsCert) !== Boolean(s.tlsKey)) problems.push('tls-cert and tls-key go together');
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
/** The PostgreSQL user's password (cli/store-file.ts reads it). */
export const DATABASE_PASSWORD_CREDENTIAL = 'database-password';

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
  const fromEnv = envValue(OPTIONS.clientSecret, env);
  if (fromEnv) s.clientSecret = fromEnv;
  else s.clientSecret = readCredential(env, CLIENT_SECRET_CREDENTIAL) ?? s.clientSecret;
  s.allowedOrigins ??= defaultOf(OPTIONS.allowedOrigins, s) as string[];
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

function ordinal(n: number): string {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th');
  return `${n}${suffix}`;
}
