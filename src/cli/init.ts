/**
 * `broker init`: answers from flags and BROKER_* variables (init/answers.ts), the
 * wizard for the rest on a terminal (init/wizard.ts), then the settings written
 * once, whole and valid, keeping what was not asked.
 */
import { randomBytes } from 'node:crypto';
import { hashPasscode, PASSCODE_MAX_LENGTH, PASSCODE_MIN_LENGTH } from '../broker/passcode.ts';
import { brokerHome } from '../config/home.ts';
import { defaultOf, OPTION_LIST } from '../config/options.ts';
import { readSettings, validateSettings, writeSettings, type Settings } from '../config/settings.ts';
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
  const next = merge(answers, old, flags);
  requireApp(next);
  const newPasscode = await setPasscode(next, answers);
  const problems = validateSettings(next, { requireSecret: true });
  if (problems.length) throw new BrokerError('usage', `Invalid settings: ${problems.join('; ')}.`, { hint: 'Fix the flags and run `broker init` again.' });
  writeSettings(home, next as Settings);

  io.out(`Settings written to ${home} (mode 0600).`);
  io.out(`Redirect URI to register in Entra (platform Web): ${next.publicUrl}/logged-in`);
  if (newPasscode) {
    io.out(`Connect passcode (shown once; needed to create connections): ${newPasscode}`);
  }
  if (Object.keys(old).length === 0) {
    io.out(`Next: \`broker serve\` (or \`broker service install\` to run it as a service), then open ${next.publicUrl}/ to connect OneDrive.`);
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

/** Without a terminal nothing can be asked: name every missing flag at once. */
function requireApp(next: Partial<Settings>): void {
  const missing: string[] = [];
  if (!next.clientId) missing.push('--client-id (or BROKER_CLIENT_ID)');
  if (!next.clientSecret) missing.push('--client-secret-file PATH (or BROKER_CLIENT_SECRET)');
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
