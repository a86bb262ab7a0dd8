/**
 * `broker init` on a terminal: the questions, in the order the Entra walk-through
 * needs them. Every question starts from the flag, the old answer, or the right
 * default for a personal OneDrive.
 */
import { PASSCODE_MAX_LENGTH, PASSCODE_MIN_LENGTH } from '../../broker/passcode.ts';
import { normaliseUrl, validateClientId, validateClientSecret, validateHttpUrl, validateListen, validateOrigin, type Settings } from '../../config/settings.ts';
import { defaultOf, OPTIONS } from '../../config/options.ts';
import { BrokerError } from '../../errors.ts';
import { PERMISSION_STEPS, registrationSteps, SECRET_STEPS } from '../entra-steps.ts';
import type { Io } from '../io.ts';
import type { Answers } from './answers.ts';

type Prompts = typeof import('@inquirer/prompts');

const check = (fn: (v: string) => string | null) => (v: string) => fn(v.trim()) ?? true;

export async function askAll(given: Answers, old: Partial<Settings>, io: Io): Promise<Answers> {
  const prompts = await import('@inquirer/prompts');
  const out = { ...given };
  io.out('broker init: set up your private OAuth token broker for OneDrive.\n');
  await askAddresses(prompts, out, old);
  io.out(`\n${registrationSteps(`${out.publicUrl}/logged-in`)}\n`);
  await askApp(prompts, out, old);
  io.out(`\n${SECRET_STEPS}\n`);
  await askSecret(prompts, out, old);
  io.out(`\n${PERMISSION_STEPS}\n`);
  await askPasscode(prompts, out, old, io);
  for (const o of out.allowedOrigins ?? []) if (validateOrigin(o)) throw new BrokerError('usage', `--allowed-origin ${o} ${validateOrigin(o)}.`);
  return out;
}

/** Where it listens and the URL it is reached at: the redirect URI in the steps that follow is built from it. */
async function askAddresses({ input }: Prompts, out: Answers, old: Partial<Settings>): Promise<void> {
  out.listen ??= await input({ message: 'Listen on (HOST:PORT)', default: old.listen ?? OPTIONS.listen.default, validate: check(validateListen) });
  out.publicUrl ??= normaliseUrl(
    await input({
      message: 'Public URL (what your browser and Microsoft see; https, or http://localhost)',
      default: old.publicUrl ?? (defaultOf(OPTIONS.publicUrl, out) as string),
      validate: check((v) => validateHttpUrl(normaliseUrl(v), 'public-url', { allowInsecureHttp: old.insecureHttp })),
    }),
  );
}

async function askApp({ input, select }: Prompts, out: Answers, old: Partial<Settings>): Promise<void> {
  out.tenant ??= await select({
    message: 'Which accounts does the app accept?',
    default: old.tenant ?? OPTIONS.tenant.default,
    choices: [
      { name: 'Personal Microsoft accounts only (consumers)', value: 'consumers' },
      { name: 'Work/school and personal accounts (common)', value: 'common' },
      { name: 'Work/school accounts only (organizations)', value: 'organizations' },
      ...(old.tenant && !['consumers', 'common', 'organizations'].includes(old.tenant) ? [{ name: `Tenant ${old.tenant}`, value: old.tenant }] : []),
    ],
  });
  out.clientId ??= (await input({ message: 'Application (client) ID', default: old.clientId, validate: check(validateClientId) })).trim();
}

async function askSecret({ input, password, confirm }: Prompts, out: Answers, old: Partial<Settings>): Promise<void> {
  let newSecret = false;
  if (!out.clientSecret) {
    const keep = old.clientSecret ? await confirm({ message: 'Keep the app secret recorded before?', default: true }) : false;
    if (!keep) {
      out.clientSecret = (await password({ message: 'Client secret Value', mask: '*', validate: check(validateClientSecret) })).trim();
      newSecret = true;
    }
  }
  out.secretExpires ??= (
    await input({
      message: 'Secret expiry date (YYYY-MM-DD, empty if unknown)',
      // A new secret has its own expiry: offering the old date would silently keep a wrong reminder.
      default: newSecret ? undefined : old.secretExpires,
      validate: (v) => v.trim() === '' || /^\d{4}-\d{2}-\d{2}$/.test(v.trim()) || 'Use YYYY-MM-DD',
    })
  ).trim();
}

async function askPasscode({ password, select }: Prompts, out: Answers, old: Partial<Settings>, io: Io): Promise<void> {
  if (out.passcode !== undefined) return;
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
    const first = await password({
      message: 'Passcode (8+ characters)',
      mask: '*',
      validate: (v) => (v.length >= PASSCODE_MIN_LENGTH && v.length <= PASSCODE_MAX_LENGTH) || `${PASSCODE_MIN_LENGTH} to ${PASSCODE_MAX_LENGTH} characters`,
    });
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
