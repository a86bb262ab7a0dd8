/**
 * `broker init`: answers from flags and BROKER_* variables (init/answers.ts), the
 * wizard for the rest on a terminal (init/wizard.ts), then the settings written
 * once, whole and valid, keeping what was not asked.
 */
import { randomBytes } from 'node:crypto';
import { hashPasscode, PASSCODE_MAX_LENGTH, PASSCODE_MIN_LENGTH } from '../broker/passcode.ts';
import { brokerHome } from '../config/home.ts';
import { defaultOf, OPTION_LIST } from '../config/options.ts';
import { type OtherProviderId, otherApps, type ProviderSettings, readSettings, validateSettings, writeSettings, type Settings } from '../config/settings.ts';
import { type ProviderId, PROVIDERS } from '../oauth/providers.ts';
import { base32Encode } from '../crypto/base32.ts';
import { BrokerError } from '../errors.ts';
import { type Answers, fromFlagsAndEnv, type InitOptions, serveSettings } from './init/answers.ts';
import type { Io } from './io.ts';

export type { InitOptions } from './init/answers.ts';

export function generatePasscode(): string {
  return base32Encode(randomBytes(15)).match(/.{6}/g)!.join('-');
}

export async function initCommand(flags: InitOptions, io: Io): Promise<void> {
  const home = brokerHome(io.env);
  const old = readSettings(home);
  const given = await fromFlagsAndEnv(flags, io);
  const interactive = io.isTTY && !flags.nonInteractive;
  const answers = interactive ? await (await import('./init/wizard.ts')).askAll(given, old, io) : given;
  const provider = (answers.provider ?? 'microsoft') as ProviderId;
  const app = provider === 'microsoft' ? noEndpointFlags(answers) : takeApp(answers);
  const next = merge(answers, old, flags);
  if (app) next.providers = { ...old.providers, [provider]: { ...old.providers?.[provider as OtherProviderId], ...app } };
  // The wizard may set up several providers' apps in one run.
  for (const [id, a] of Object.entries(answers.apps ?? {})) next.providers = { ...next.providers, [id]: { ...next.providers?.[id as OtherProviderId], ...a } };
  for (const id of Object.keys(answers.apps ?? {})) requireApp(next, id as ProviderId);
  const apps = [...(next.clientId ? ['microsoft'] : []), ...otherApps(next)];
  requireApp(next, provider);
  delete (next as Record<string, unknown>).apps;
  const newPasscode = await setPasscode(next, answers);
  const problems = validateSettings(next, { requireSecret: true });
  if (problems.length) throw new BrokerError('usage', `Invalid settings: ${problems.join('; ')}.`, { hint: 'Fix the flags and run `broker init` again.' });
  writeSettings(home, next as Settings);

  io.out(`Settings written to ${home} (mode 0600).`);
  io.out(
    provider === 'microsoft'
      ? `Redirect URI to register in Entra (platform Web): ${next.publicUrl}/logged-in`
      : `Redirect URI to register at ${PROVIDERS[provider].name}: ${next.publicUrl}/logged-in`,
  );
  io.out(`Apps set up: ${apps.join(', ')}.`);
  if (newPasscode) {
    io.out(`Connect passcode (shown once; needed to create connections): ${newPasscode}`);
  }
  if (Object.keys(old).length === 0) {
    io.out(`Next: \`broker serve\` (or \`broker service install\` to run it as a service), then open ${next.publicUrl}/ to connect a storage account.`);
  } else {
    io.out('A running `broker serve` applies the new settings within a few seconds (listen address, HTTPS on/off and metrics need a restart); see its log.');
  }
}

/** The new settings: each answer, else the old value, else the default (in the table's order: public-url's follows listen). */
function merge(answers: Answers, old: Partial<Settings>, flags: InitOptions): Partial<Settings> {
  // Settings this command does not ask about (set by hand or by newer features) are kept.
  const next: Record<string, unknown> = { ...old };
  for (const o of OPTION_LIST) {
    if (o.init !== 'answer' || o.stored === false) continue;
    const value = answers[o.name as keyof Settings] ?? old[o.name as keyof Settings] ?? defaultOf(o, next);
    // '' is an answer ("unknown"): it clears an optional setting, like an old expiry date.
    next[o.name] = value === '' && !o.required ? undefined : value;
  }
  return { ...next, ...serveSettings(flags) };
}

/** The endpoint flags are for the other providers: Microsoft's endpoints come from --authority and --tenant. */
function noEndpointFlags(answers: Answers): undefined {
  const given = (['authorizeUrl', 'tokenUrl', 'revokeUrl'] as const).filter((k) => answers[k] !== undefined);
  if (given.length) {
    throw new BrokerError(
      'usage',
      `--${given.map((k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)).join(', --')} need --provider other than microsoft.`,
      {
        hint: 'Microsoft keeps --authority (and --tenant).',
      },
    );
  }
  return undefined;
}

/** The app answers of a provider other than Microsoft, taken out of the answers so that Microsoft's fields stay as they were. */
function takeApp(answers: Answers): Partial<ProviderSettings> {
  const app: Record<string, string> = {};
  for (const k of ['clientId', 'clientSecret', 'secretExpires', 'authorizeUrl', 'tokenUrl', 'revokeUrl'] as const) {
    const v = answers[k];
    delete answers[k];
    if (typeof v === 'string') app[k] = v;
  }
  return app as Partial<ProviderSettings>;
}

/** Without a terminal nothing can be asked: name every missing flag at once. */
function requireApp(next: Partial<Settings>, provider: ProviderId): void {
  // Settings changed on a broker whose apps are all at other providers: nothing of Microsoft's is needed.
  if (provider === 'microsoft' && !next.clientId && !next.clientSecret && otherApps(next).length) return;
  const missing: string[] = [];
  const app = provider === 'microsoft' ? next : next.providers?.[provider];
  const p = provider === 'microsoft' ? '' : ` with --provider ${provider}`;
  if (!app?.clientId) missing.push(`--client-id (or BROKER_CLIENT_ID)${p}`);
  if (!app?.clientSecret) missing.push(`--client-secret-file PATH (or BROKER_CLIENT_SECRET)${p}`);
  if (missing.length) {
    throw new BrokerError('usage', `Missing: ${missing.join(', ')}.`, {
      hint: 'Without a terminal, `broker init --non-interactive` needs these; see `broker init --help`.',
    });
  }
}

/** Hashes the given passcode, or generates one when there is none yet or the wizard asked for it; returns a generated one to show once. */
async function setPasscode(next: Partial<Settings>, answers: Answers): Promise<string | undefined> {
  const passcode = answers.passcode;
  if (passcode !== undefined) {
    if (passcode.length < PASSCODE_MIN_LENGTH || passcode.length > PASSCODE_MAX_LENGTH) {
      throw new BrokerError('usage', `The passcode must be ${PASSCODE_MIN_LENGTH} to ${PASSCODE_MAX_LENGTH} characters.`);
    }
    next.passcodeHash = await hashPasscode(passcode);
    return undefined;
  }
  if (next.passcodeHash && !answers.newPasscode) return undefined;
  const generated = generatePasscode();
  next.passcodeHash = await hashPasscode(generated);
  return generated;
}
