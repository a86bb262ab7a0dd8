/**
 * `broker init`'s answers as given: flags first, then BROKER_* variables. What is
 * not given here the wizard asks, or the old settings and defaults fill in.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { normaliseUrl, type Settings } from '../../config/settings.ts';
import { BrokerError } from '../../errors.ts';
import type { Io } from '../io.ts';

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
export type ServeSettings = Pick<Settings, 'tlsCert' | 'tlsKey' | 'insecureHttp' | 'logFormat' | 'metrics' | 'metricsListen' | 'trustProxy'>;
export type InitOptions = InitFlags & ServeSettings;

export type Answers = Partial<Settings> & {
  passcode?: string;
  /** The wizard's "generate a new one": replace the kept passcode, shown once after the settings are written. */
  newPasscode?: boolean;
};

/** Answers from flags, then BROKER_* variables; prompts and old settings fill the rest. */
export async function fromFlagsAndEnv(flags: InitFlags, io: Io): Promise<Answers> {
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

export function defaultPublicUrl(listen: string): string {
  const port = listen.slice(listen.lastIndexOf(':') + 1);
  // Microsoft accepts http only for localhost, and ignores the port when matching it.
  return `http://localhost:${port}`;
}

/** Only the serve settings given as flags; absent ones keep their old values. */
export function serveSettings(f: ServeSettings): Partial<Settings> {
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
