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
import { providerSteps } from '../provider-steps.ts';
import { PROVIDER_IDS, PROVIDERS, type ProviderId, SERVICES } from '../../oauth/providers.ts';
import { type OtherProviderId, otherApps, type ProviderSettings } from '../../config/settings.ts';
import type { Io } from '../io.ts';
import type { Answers } from './answers.ts';

type Prompts = typeof import('@inquirer/prompts');

const check = (fn: (v: string) => string | null) => (v: string) => fn(v.trim()) ?? true;

export async function askAll(given: Answers, old: Partial<Settings>, io: Io): Promise<Answers> {
  const prompts = await import('@inquirer/prompts');
  const out = { ...given };
  io.out('broker init: set up your private OAuth token broker.\n');
  await askAddresses(prompts, out, old);
  const chosen = await askProviders(prompts, out, old);
  const redirect = `${out.publicUrl}/logged-in`;
  if (chosen.includes('microsoft')) {
    io.out(`\n${registrationSteps(redirect)}\n`);
    await askApp(prompts, out, old);
    io.out(`\n${SECRET_STEPS}\n`);
    await askSecret(prompts, out, old);
    io.out(`\n${PERMISSION_STEPS}\n`);
  }
  for (const id of chosen) {
    if (id === 'microsoft') continue;
    io.out(`\n${providerSteps(id, redirect)}\n`);
    out.apps = { ...out.apps, [id]: await askOtherApp(prompts, id, old.providers?.[id]) };
  }
  await askPasscode(prompts, out, old, io);
  for (const o of out.allowedOrigins ?? []) if (validateOrigin(o)) throw new BrokerError('usage', `--allowed-origin ${o} ${validateOrigin(o)}.`);
  return out;
}

/**
 * Which providers' apps this run sets up: the one --provider names, else the
 * owner's choice (on a rerun, the ones already set up are ticked).
 */
async function askProviders({ checkbox }: Prompts, out: Answers, old: Partial<Settings>): Promise<ProviderId[]> {
  if (out.provider) {
    const id = out.provider as ProviderId;
    if (id !== 'microsoft') {
      // The flags given for it answer its questions; Microsoft's fields stay as they were.
      const app: Partial<ProviderSettings> = { ...old.providers?.[id] };
      for (const k of ['clientId', 'clientSecret', 'secretExpires', 'authorizeUrl', 'tokenUrl', 'revokeUrl'] as const) {
        if (out[k] !== undefined) app[k] = out[k];
        delete out[k];
      }
      out.provider = undefined;
      out.apps = { [id]: app };
      return [];
    }
    return ['microsoft'];
  }
  const configured = new Set<string>([...(old.clientId || !old.providers ? ['microsoft'] : []), ...otherApps(old)]);
  return checkbox<ProviderId>({
    message: 'Set up the apps of which providers? (space to tick, enter to go on)',
    required: true,
    choices: PROVIDER_IDS.map((id) => ({
      name: `${PROVIDERS[id].name}: ${SERVICES.filter((x) => x.provider.id === id)
        .map((x) => x.id)
        .join(', ')}`,
      value: id,
      checked: configured.has(id),
    })),
  });
}

/** One app at a provider other than Microsoft: id, secret (kept if the owner wants), expiry. */
async function askOtherApp({ input, password, confirm }: Prompts, id: OtherProviderId, old: ProviderSettings | undefined): Promise<ProviderSettings> {
  const name = PROVIDERS[id].name;
  const clientId = (
    await input({ message: `${name} client id`, default: old?.clientId, validate: (v) => /^\S{1,256}$/.test(v.trim()) || 'One word, as the console shows it' })
  ).trim();
  const keep = old?.clientSecret ? await confirm({ message: `Keep the ${name} client secret recorded before?`, default: true }) : false;
  const clientSecret = keep
    ? old!.clientSecret
    : (await password({ message: `${name} client secret`, mask: '*', validate: check(validateClientSecret) })).trim();
  const secretExpires = (
    await input({
      message: `${name} secret expiry date (YYYY-MM-DD, empty if none)`,
      default: keep ? old?.secretExpires : undefined,
      validate: (v) => v.trim() === '' || /^\d{4}-\d{2}-\d{2}$/.test(v.trim()) || 'Use YYYY-MM-DD',
    })
  ).trim();
  return { ...old, clientId, clientSecret, secretExpires: secretExpires || undefined };
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
