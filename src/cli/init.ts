import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { hashPasscode, PASSCODE_MAX_LENGTH, PASSCODE_MIN_LENGTH } from '../broker/passcode.ts';
import { brokerHome } from '../config/home.ts';
import {
  DEFAULTS,
  normaliseUrl,
  readSettings,
  validateClientId,
  validateClientSecret,
  validateHttpUrl,
  validateListen,
  validateOrigin,
  validateSettings,
  validateTenant,
  writeSettings,
  type Settings,
} from '../config/settings.ts';
import { base32Encode } from '../crypto/base32.ts';
import { BrokerError } from '../errors.ts';
import { PERMISSION_STEPS, registrationSteps, SECRET_STEPS } from './entra-steps.ts';
import type { Io } from './io.ts';

export interface InitFlags {
  nonInteractive?: boolean;
  clientId?: string;
  clientSecretFile?: string;
  tenant?: string;
  authority?: string;
  publicUrl?: string;
  listen?: string;
  passcode?: string;
  passcodeFile?: string;
  allowedOrigin?: string[];
  secretExpires?: string;
}

/** Settings for `serve` that init records as given, so that a service unit needs no flags. */
type ServeSettings = Pick<Settings, 'tlsCert' | 'tlsKey' | 'insecureHttp' | 'logFormat' | 'metrics' | 'metricsListen' | 'trustProxy'>;
export type InitOptions = InitFlags & ServeSettings;

type Answers = Partial<Settings> & {
  passcode?: string;
  /** The wizard's "generate a new one": replace the kept passcode, shown once after the settings are written. */
  newPasscode?: boolean;
};

/** Answers from flags, then BROKER_* variables; prompts and old settings fill the rest. */
async function fromFlagsAndEnv(flags: InitFlags, io: Io): Promise<Answers> {
  const env = io.env;
  let clientSecret: string | undefined;
  if (flags.clientSecretFile) {
    try {
      clientSecret = (flags.clientSecretFile === '-' ? await io.readStdin() : readFileSync(flags.clientSecretFile, 'utf8')).trim();
    } catch (e) {
      throw new BrokerError('usage', `Cannot read --client-secret-file ${flags.clientSecretFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`);
    }
  } else if (env.BROKER_CLIENT_SECRET) clientSecret = env.BROKER_CLIENT_SECRET.trim();
  let passcode = flags.passcode ?? env.BROKER_PASSCODE;
  if (flags.passcodeFile) {
    // A file keeps the passcode out of `ps` and shell history, unlike --passcode.
    try {
      passcode = (flags.passcodeFile === '-' ? await io.readStdin() : readFileSync(flags.passcodeFile, 'utf8')).replace(/\r?\n$/, '');
    } catch (e) {
      throw new BrokerError('usage', `Cannot read --passcode-file ${flags.passcodeFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`);
    }
  }
  const origins = flags.allowedOrigin?.length ? flags.allowedOrigin : env.BROKER_ALLOWED_ORIGINS?.split(/[\s,]+/).filter(Boolean);
  return {
    clientId: (flags.clientId ?? env.BROKER_CLIENT_ID)?.trim(),
    clientSecret,
    tenant: flags.tenant ?? env.BROKER_TENANT,
    authority: (flags.authority ?? env.BROKER_AUTHORITY) && normaliseUrl((flags.authority ?? env.BROKER_AUTHORITY)!),
    publicUrl: (flags.publicUrl ?? env.BROKER_PUBLIC_URL) && normaliseUrl((flags.publicUrl ?? env.BROKER_PUBLIC_URL)!),
    listen: flags.listen ?? env.BROKER_LISTEN,
    allowedOrigins: origins?.map(normaliseUrl),
    secretExpires: flags.secretExpires ?? env.BROKER_SECRET_EXPIRES,
    passcode,
  };
}

function defaultPublicUrl(listen: string): string {
  const port = listen.slice(listen.lastIndexOf(':') + 1);
  // Microsoft accepts http only for localhost, and ignores the port when matching it.
  return `http://localhost:${port}`;
}

export function generatePasscode(): string {
  return base32Encode(randomBytes(15)).match(/.{6}/g)!.join('-');
}

export async function initCommand(flags: InitOptions, io: Io): Promise<void> {
  const home = brokerHome(io.env);
  const old = readSettings(home);
  const given = await fromFlagsAndEnv(flags, io);
  const interactive = io.isTTY && !flags.nonInteractive;
  const answers = interactive ? await askAll(given, old, io) : given;

  const listen = answers.listen ?? old.listen ?? DEFAULTS.listen;
  const next: Partial<Settings> = {
    // Settings this command does not ask about (set by hand or by newer features) are kept.
    ...old,
    clientId: answers.clientId ?? old.clientId,
    clientSecret: answers.clientSecret ?? old.clientSecret,
    tenant: answers.tenant ?? old.tenant ?? DEFAULTS.tenant,
    authority: answers.authority ?? old.authority ?? DEFAULTS.authority,
    listen,
    publicUrl: answers.publicUrl ?? old.publicUrl ?? defaultPublicUrl(listen),
    allowedOrigins: answers.allowedOrigins ?? old.allowedOrigins ?? [...DEFAULTS.allowedOrigins],
    // '' is an answer ("unknown"): it clears an old date.
    secretExpires: answers.secretExpires !== undefined ? answers.secretExpires || undefined : old.secretExpires,
    passcodeHash: old.passcodeHash,
    ...serveSettings(flags),
  };

  const missing: string[] = [];
  if (!next.clientId) missing.push('--client-id (or BROKER_CLIENT_ID)');
  if (!next.clientSecret) missing.push('--client-secret-file PATH (or BROKER_CLIENT_SECRET)');
  if (missing.length) {
    throw new BrokerError('usage', `Missing: ${missing.join(', ')}.`, {
      hint: 'Without a terminal, `broker init --non-interactive` needs these; see `broker init --help`.',
    });
  }

  let newPasscode: string | undefined;
  const passcode = answers.passcode;
  if (passcode !== undefined) {
    if (passcode.length < PASSCODE_MIN_LENGTH || passcode.length > PASSCODE_MAX_LENGTH) {
      throw new BrokerError('usage', `The passcode must be ${PASSCODE_MIN_LENGTH} to ${PASSCODE_MAX_LENGTH} characters.`);
    }
    next.passcodeHash = await hashPasscode(passcode);
  } else if (!next.passcodeHash || answers.newPasscode) {
    newPasscode = generatePasscode();
    next.passcodeHash = await hashPasscode(newPasscode);
  }

  const problems = validateSettings(next, { requireSecret: true });
  if (problems.length) throw new BrokerError('usage', `Invalid settings: ${problems.join('; ')}.`, { hint: 'Fix the flags and run `broker init` again.' });
  writeSettings(home, next as Settings);

  io.out(`Settings written to ${home} (mode 0600).`);
  io.out(`Redirect URI to register in Entra (platform Web): ${next.publicUrl}/logged-in`);
  if (newPasscode) {
    io.out(`Connect passcode (shown once; needed to create connections): ${newPasscode}`);
  }
  if (Object.keys(old).length === 0) {
    io.out('Next: `broker serve` (or `broker service install` to run it as a service), then open ' + `${next.publicUrl}/` + ' to connect OneDrive.');
  } else {
    io.out('A running `broker serve` applies the new settings within a few seconds (listen address, HTTPS on/off and metrics need a restart); see its log.');
  }
}

/** The wizard. Every question starts from the flag, the old answer, or the right default for a personal OneDrive. */
async function askAll(given: Answers, old: Partial<Settings>, io: Io): Promise<Answers> {
  const { input, password, select, confirm } = await import('@inquirer/prompts');
  const out = { ...given };
  const check = (fn: (v: string) => string | null) => (v: string) => fn(v.trim()) ?? true;
  io.out('broker init: set up your private OAuth token broker for OneDrive.\n');

  out.listen ??= await input({ message: 'Listen on (HOST:PORT)', default: old.listen ?? DEFAULTS.listen, validate: check(validateListen) });
  out.publicUrl ??= normaliseUrl(
    await input({
      message: 'Public URL (what your browser and Microsoft see; https, or http://localhost)',
      default: old.publicUrl ?? defaultPublicUrl(out.listen),
      validate: check((v) => validateHttpUrl(normaliseUrl(v), 'public-url', { allowInsecureHttp: old.insecureHttp })),
    }),
  );
  io.out(`\n${registrationSteps(`${out.publicUrl}/logged-in`)}\n`);
  out.tenant ??= await select({
    message: 'Which accounts does the app accept?',
    default: old.tenant ?? DEFAULTS.tenant,
    choices: [
      { name: 'Personal Microsoft accounts only (consumers)', value: 'consumers' },
      { name: 'Work/school and personal accounts (common)', value: 'common' },
      { name: 'Work/school accounts only (organizations)', value: 'organizations' },
      ...(old.tenant && !['consumers', 'common', 'organizations'].includes(old.tenant) ? [{ name: `Tenant ${old.tenant}`, value: old.tenant }] : []),
    ],
  });
  out.clientId ??= (await input({ message: 'Application (client) ID', default: old.clientId, validate: check(validateClientId) })).trim();
  io.out(`\n${SECRET_STEPS}\n`);
  let newSecret = false;
  if (!out.clientSecret) {
    const keep = old.clientSecret ? await confirm({ message: 'Keep the app secret recorded before?', default: true }) : false;
    if (!keep) {
      out.clientSecret = (await password({ message: 'Client secret Value', mask: '*', validate: check(validateClientSecret) })).trim();
      newSecret = true;
    }
  }
  out.secretExpires ??=
    (await input({
      message: 'Secret expiry date (YYYY-MM-DD, empty if unknown)',
      // A new secret has its own expiry: offering the old date would silently keep a wrong reminder.
      default: newSecret ? undefined : old.secretExpires,
      validate: (v) => v.trim() === '' || /^\d{4}-\d{2}-\d{2}$/.test(v.trim()) || 'Use YYYY-MM-DD',
    })).trim();
  io.out(`\n${PERMISSION_STEPS}\n`);
  if (out.passcode === undefined) {
    const choice = await select({
      message: 'Connect passcode (needed to create connections)',
      choices: [
        ...(old.passcodeHash ? [{ name: 'Keep the current passcode', value: 'keep' }] : []),
        { name: 'Generate a strong one and show it once', value: 'generate' },
        { name: 'Type my own', value: 'type' },
      ],
    });
    // Typed blind and never shown again: ask twice, so a typo does not lock the owner out.
    while (choice === 'type') {
      const first = await password({ message: 'Passcode (8+ characters)', mask: '*', validate: (v) => (v.length >= PASSCODE_MIN_LENGTH && v.length <= PASSCODE_MAX_LENGTH) || `${PASSCODE_MIN_LENGTH} to ${PASSCODE_MAX_LENGTH} characters` });
      const again = await password({ message: 'The same passcode again', mask: '*' });
      if (first === again) {
        out.passcode = first;
        break;
      }
      io.out('The two passcodes differ; type it again.');
    }
    // Generated after the settings are written, so the one shown is the one that works.
    if (choice === 'generate') out.newPasscode = true;
  }
  for (const o of out.allowedOrigins ?? []) if (validateOrigin(o)) throw new BrokerError('usage', `--allowed-origin ${o} ${validateOrigin(o)}.`);
  return out;
}


/** Only the serve settings given as flags; absent ones keep their old values. */
function serveSettings(f: ServeSettings): Partial<Settings> {
  const out: Partial<Settings> = {};
  if (f.tlsCert !== undefined) out.tlsCert = resolve(f.tlsCert);
  if (f.tlsKey !== undefined) out.tlsKey = resolve(f.tlsKey);
  if (f.insecureHttp !== undefined) out.insecureHttp = f.insecureHttp;
  if (f.logFormat !== undefined) out.logFormat = f.logFormat;
  if (f.metrics !== undefined) out.metrics = f.metrics;
  if (f.metricsListen !== undefined) out.metricsListen = f.metricsListen;
  if (f.trustProxy !== undefined) out.trustProxy = f.trustProxy;
  return out;
}
