/**
 * Every option of `init` and `serve`, declared once: its flag, its BROKER_*
 * variable, its settings key, default, help line, parser and check, which commands
 * take it, and whether a running `serve` applies a change. The commander options
 * (cli/flags.ts), init's answers and recording (cli/init/answers.ts), serve's
 * precedence (cli/serve.ts), the settings check (config/settings.ts) and the
 * README's table (scripts/options-table.ts) are derived from it.
 *
 * Where a value comes from: a flag, else its variable (an empty one counts as
 * unset), else the settings file, else the default. `init` reads the variables
 * only for what it asks (`init: 'answer'`); what it records for `serve`, it takes
 * from flags alone.
 */
import { resolve } from 'node:path';
import { PROVIDER_IDS } from '../oauth/providers.ts';
import type { Settings } from './settings.ts';
import {
  normaliseUrl,
  validateClientId,
  validateClientSecret,
  validateDatabaseUrl,
  validateDate,
  validateHttpUrl,
  validateListen,
  validateOrigin,
  validateTenant,
} from './validate.ts';

export interface OptionSpec {
  /** `--public-url`; absent when the value is taken from a file only (fileFlag). */
  flag?: string;
  /** The value's placeholder, like URL; absent for a switch. */
  arg?: string;
  /** `--passcode-file`: the value from a file ("-" for stdin), which keeps it out of `ps`. */
  fileFlag?: string;
  env?: string;
  /** What applies when nothing is given: a value, or one computed from the other settings. */
  default?: string | readonly string[] | ((s: Partial<Settings>) => string);
  /** The default as help and the README show it, when it is not a plain value. */
  defaultText?: string;
  /** For `--help`: what it is, lower case, no period. */
  help: string;
  /** Said in the README's table after the help line. */
  more?: string;
  /** `init` asks it (flag, else variable, else the wizard), or records it for `serve` as given by flag. */
  init?: 'answer' | 'record';
  /** `serve` takes the flag (then the variable) over the setting. */
  serve?: true;
  /** A running `serve` needs a restart to apply a changed setting (a new socket). */
  restart?: true;
  /** Never shown: no value in a message, and a plain flag only with a warning. */
  secret?: true;
  /** Not in the settings file as given (the passcode is stored as its hash). */
  stored?: false;
  required?: true;
  /** The flag may be given several times; the variable is a list separated by commas or spaces. */
  repeatable?: true;
  choices?: readonly string[];
  /** From what was typed to what is recorded. */
  parse?: (v: string) => string;
  /** Why a value is wrong (null: it is right), the end of a sentence starting with the option's name. */
  check?: (v: string, ctx: { allowInsecureHttp: boolean }) => string | null;
}

const trim = (v: string) => v.trim();

function validateNotifyUrl(v: string): string | null {
  try {
    const u = new URL(v);
    return u.protocol === 'https:' || u.protocol === 'http:' ? null : 'must start with https:// or http://';
  } catch {
    return 'is not a URL';
  }
}

function publicUrlFor(s: Partial<Settings>): string {
  const listen = s.listen ?? OPTIONS.listen.default;
  // Microsoft accepts http only for localhost, and ignores the port when matching it.
  return `http://localhost:${listen.slice(listen.lastIndexOf(':') + 1)}`;
}

export const OPTIONS = {
  provider: {
    flag: '--provider',
    arg: 'NAME',
    env: 'BROKER_PROVIDER',
    default: 'microsoft',
    help: 'whose app --client-id, --client-secret-file, --secret-expires and the URL flags set',
    more: 'microsoft, google, dropbox, box or pcloud; `init` adds or updates that one app and keeps the others',
    init: 'answer',
    stored: false,
    choices: PROVIDER_IDS,
  },
  clientId: {
    flag: '--client-id',
    arg: 'ID',
    env: 'BROKER_CLIENT_ID',
    help: "the app's client id (Entra: the Application (client) ID; Dropbox: the App key)",
    init: 'answer',
    required: true,
    parse: trim,
    check: validateClientId,
  },
  clientSecret: {
    fileFlag: '--client-secret-file',
    env: 'BROKER_CLIENT_SECRET',
    help: "the app's client secret (Entra: the secret's Value)",
    more: 'the variable holds the value itself; for Microsoft `serve` takes it too, before a systemd credential and the settings file',
    init: 'answer',
    secret: true,
    required: true,
    parse: trim,
    check: validateClientSecret,
  },
  tenant: {
    flag: '--tenant',
    arg: 'TENANT',
    env: 'BROKER_TENANT',
    default: 'consumers',
    help: 'consumers, common, organizations, or a tenant id',
    init: 'answer',
    required: true,
    check: validateTenant,
  },
  authority: {
    flag: '--authority',
    arg: 'URL',
    env: 'BROKER_AUTHORITY',
    default: 'https://login.microsoftonline.com',
    help: 'identity platform base URL',
    more: 'endpoints are `{authority}/{tenant}/oauth2/v2.0/authorize` and `…/token`; `https://` (plain http only for a local test provider)',
    init: 'answer',
    required: true,
    parse: normaliseUrl,
    check: (v) => validateHttpUrl(v, 'authority'),
  },
  authorizeUrl: {
    flag: '--authorize-url',
    arg: 'URL',
    env: 'BROKER_AUTHORIZE_URL',
    defaultText: "the provider's",
    help: "with --provider other than microsoft: the provider's authorization endpoint",
    more: 'for tests and special clouds; Microsoft keeps --authority',
    init: 'answer',
    stored: false,
    check: (v) => validateHttpUrl(v, 'authority'),
  },
  tokenUrl: {
    flag: '--token-url',
    arg: 'URL',
    env: 'BROKER_TOKEN_URL',
    defaultText: "the provider's",
    help: "with --provider other than microsoft: the provider's token endpoint",
    more: "pCloud: only this URL's host (by default api.pcloud.com and eapi.pcloud.com) may be named by the login's `hostname`",
    init: 'answer',
    stored: false,
    check: (v) => validateHttpUrl(v, 'authority'),
  },
  revokeUrl: {
    flag: '--revoke-url',
    arg: 'URL',
    env: 'BROKER_REVOKE_URL',
    defaultText: "the provider's",
    help: "with --provider other than microsoft: the provider's revocation endpoint",
    init: 'answer',
    stored: false,
    check: (v) => validateHttpUrl(v, 'authority'),
  },
  listen: {
    flag: '--listen',
    arg: 'HOST:PORT',
    env: 'BROKER_LISTEN',
    default: '127.0.0.1:8080',
    help: 'address to listen on',
    init: 'answer',
    serve: true,
    restart: true,
    required: true,
    check: validateListen,
  },
  publicUrl: {
    flag: '--public-url',
    arg: 'URL',
    env: 'BROKER_PUBLIC_URL',
    default: publicUrlFor,
    defaultText: 'http://localhost:{port}',
    help: 'URL the browser and Microsoft see; the redirect URI is {public-url}/logged-in',
    more: 'must be the root of a host, and `https://` unless the host is `localhost` or `127.0.0.1`',
    init: 'answer',
    required: true,
    parse: normaliseUrl,
    check: (v, ctx) => validateHttpUrl(v, 'public-url', ctx),
  },
  passcode: {
    flag: '--passcode',
    arg: 'TEXT',
    fileFlag: '--passcode-file',
    env: 'BROKER_PASSCODE',
    defaultText: 'generated, printed once',
    help: 'connect passcode, 8 to 256 characters',
    init: 'answer',
    secret: true,
    stored: false,
  },
  allowedOrigins: {
    flag: '--allowed-origin',
    arg: 'ORIGIN',
    env: 'BROKER_ALLOWED_ORIGINS',
    default: ['http://localhost:8200', 'http://127.0.0.1:8200'],
    help: "origin allowed to receive the AuthID by postMessage (Duplicati's web UI)",
    init: 'answer',
    repeatable: true,
    parse: normaliseUrl,
    check: validateOrigin,
  },
  secretExpires: {
    flag: '--secret-expires',
    arg: 'YYYY-MM-DD',
    env: 'BROKER_SECRET_EXPIRES',
    help: 'expiry date of the client secret, for reminders',
    init: 'answer',
    check: validateDate,
  },
  tlsCert: {
    flag: '--tls-cert',
    arg: 'PEM',
    help: 'serve HTTPS with this PEM certificate (re-read on SIGHUP)',
    more: 'HTTPS on or off needs a restart; new file paths apply at once',
    init: 'record',
    serve: true,
    parse: (v) => resolve(v),
  },
  tlsKey: {
    flag: '--tls-key',
    arg: 'PEM',
    help: 'the PEM private key for --tls-cert',
    init: 'record',
    serve: true,
    parse: (v) => resolve(v),
  },
  insecureHttp: {
    flag: '--insecure-http',
    help: 'allow a plain-http public URL that is not localhost',
    init: 'record',
    serve: true,
  },
  logFormat: {
    flag: '--log-format',
    arg: 'FORMAT',
    env: 'BROKER_LOG_FORMAT',
    default: 'text',
    help: 'log lines as text or json',
    init: 'record',
    serve: true,
    choices: ['text', 'json'],
  },
  metrics: {
    flag: '--metrics',
    help: 'serve Prometheus metrics at /metrics on the main listener',
    init: 'record',
    serve: true,
    restart: true,
  },
  metricsListen: {
    flag: '--metrics-listen',
    arg: 'HOST:PORT',
    help: 'serve /metrics on this separate address instead',
    init: 'record',
    serve: true,
    restart: true,
    check: validateListen,
  },
  databaseUrl: {
    flag: '--database-url',
    arg: 'URL',
    env: 'BROKER_DATABASE_URL',
    help: 'keep the store in this PostgreSQL database (postgres://USER@HOST:PORT/DB), shared by several instances',
    more: 'default: the SQLite file in BROKER_HOME; the password from the URL, `--database-password-file`, the credential `database-password`, or `PGPASSWORD`; TLS with `?sslmode=`',
    init: 'record',
    serve: true,
    restart: true,
    check: validateDatabaseUrl,
  },
  databasePasswordFile: {
    flag: '--database-password-file',
    arg: 'FILE',
    help: "file holding the database user's password",
    init: 'record',
    serve: true,
    restart: true,
    parse: (v) => resolve(v),
  },
  notifyUrls: {
    flag: '--notify-url',
    arg: 'URL',
    env: 'BROKER_NOTIFY_URLS',
    help: 'POST notifications (sign-in needed, app rejected, secret expiring, idle, outage) to this URL',
    more: 'JSON, ntfy or a Slack/Discord-style `{"text"}` body: see "Notifications"',
    init: 'record',
    serve: true,
    repeatable: true,
    // A webhook's path (Slack, Discord, ntfy topics) is its password.
    secret: true,
    parse: trim,
    check: validateNotifyUrl,
  },
  notifyFormat: {
    flag: '--notify-format',
    arg: 'FORMAT',
    env: 'BROKER_NOTIFY_FORMAT',
    defaultText: 'from the URL, else json',
    help: 'body of --notify-url posts when the URL does not tell: json, ntfy or text',
    init: 'record',
    serve: true,
    choices: ['json', 'ntfy', 'text'],
  },
  notifyCommand: {
    flag: '--notify-command',
    arg: 'CMD',
    env: 'BROKER_NOTIFY_COMMAND',
    help: 'run this shell command per notification, the event as JSON on stdin and BROKER_EVENT_* variables',
    init: 'record',
    serve: true,
  },
  notifyAll: {
    flag: '--notify-all',
    help: 'also notify connection.created and connection.revoked',
    init: 'record',
    serve: true,
  },
  trustProxy: {
    flag: '--trust-proxy',
    help: 'behind a reverse proxy on this machine: rate-limit by the X-Forwarded-For address',
    init: 'record',
    serve: true,
  },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

/** The table in its order, each with its name (the settings key where it is stored). */
export const OPTION_LIST: readonly (OptionSpec & { name: OptionName })[] = Object.entries(OPTIONS).map(([name, o]) => ({ ...o, name: name as OptionName }));

/** The key commander gives a flag's value: `--public-url` → publicUrl. */
export function attribute(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The option's name in messages: its flag without dashes (`--client-secret-file` names client-secret). */
export function displayName(o: OptionSpec): string {
  return (o.flag ?? o.fileFlag!.replace(/-file$/, '')).replace(/^--/, '');
}

/** What help and the README say of a secret that also has a plain flag. */
export function psNote(o: OptionSpec): string | undefined {
  return o.secret && o.flag && o.fileFlag ? `${o.flag} shows in \`ps\`; prefer ${o.fileFlag} or the variable` : undefined;
}

/** A variable's value; an empty one counts as unset. */
export function envValue(o: OptionSpec, env: Record<string, string | undefined>): string | undefined {
  return (o.env && env[o.env]) || undefined;
}

/** The default for these settings, a fresh copy. */
export function defaultOf(o: OptionSpec, s: Partial<Settings>): string | string[] | undefined {
  const d = o.default;
  return typeof d === 'function' ? d(s) : Array.isArray(d) ? [...d] : (d as string | undefined);
}

/**
 * What `serve` runs with, for each option it takes: the flag, else the variable,
 * else the setting, else the default. Called again with the new settings on each reload.
 */
export function serveValues(flags: Record<string, unknown>, env: Record<string, string | undefined>, s: Partial<Settings>): Partial<Settings> {
  const out: Record<string, unknown> = {};
  for (const o of OPTION_LIST) {
    if (!o.serve || !o.flag) continue;
    const fromEnv = envValue(o, env);
    // A repeatable option's variable is a list, separated by commas or spaces.
    const given = flags[attribute(o.flag)] ?? (o.repeatable ? fromEnv?.split(/[\s,]+/).filter(Boolean) : fromEnv);
    out[o.name] = typeof given === 'string' && o.parse ? o.parse(given) : (given ?? s[o.name as keyof Settings] ?? defaultOf(o, s));
  }
  return out as Partial<Settings>;
}
