/**
 * `broker init`'s answers as given: flags first, then BROKER_* variables, for the
 * options the table (config/options.ts) marks `init: 'answer'`. What is not given
 * here the wizard asks, or the old settings and defaults fill in.
 */
import { readFileSync } from 'node:fs';
import { attribute, envValue, OPTION_LIST, type OptionSpec } from '../../config/options.ts';
import type { OtherProviderId, ProviderSettings, Settings } from '../../config/settings.ts';
import { BrokerError } from '../../errors.ts';
import type { Io } from '../io.ts';

/** What commander hands `init`: each option under its flag's camelCase name, and --non-interactive. */
export type InitOptions = { nonInteractive?: boolean } & Record<string, string | string[] | boolean | undefined>;

export type Answers = Partial<Settings> & {
  passcode?: string;
  /** Whose app the answers are (`--provider`); Microsoft's when absent. */
  provider?: string;
  authorizeUrl?: string;
  tokenUrl?: string;
  revokeUrl?: string;
  /** The wizard's answers for providers other than Microsoft, one app each. */
  apps?: Partial<Record<OtherProviderId, Partial<ProviderSettings>>>;
  /** The wizard's "generate a new one": replace the kept passcode, shown once after the settings are written. */
  newPasscode?: boolean;
};

/** Answers from flags, then BROKER_* variables; prompts and old settings fill the rest. */
export async function fromFlagsAndEnv(flags: InitOptions, io: Io): Promise<Answers> {
  const answers: Record<string, unknown> = {};
  for (const o of OPTION_LIST) {
    if (o.init !== 'answer') continue;
    const given = await givenValue(o, flags, io);
    if (given !== undefined) answers[o.name] = Array.isArray(given) ? given.map((v) => parse(o, v)) : parse(o, given);
  }
  return answers as Answers;
}

const parse = (o: OptionSpec, v: string) => (o.parse ? o.parse(v) : v);

/** The value as given: the file flag's file, else the flag, else the variable (a list, for a repeatable option). */
async function givenValue(o: OptionSpec, flags: InitOptions, io: Io): Promise<string | string[] | undefined> {
  const file = o.fileFlag && flags[attribute(o.fileFlag)];
  if (typeof file === 'string') {
    // A file keeps a secret out of `ps` and shell history, unlike a flag.
    try {
      return (file === '-' ? await io.readStdin() : readFileSync(file, 'utf8')).replace(/\r?\n$/, '');
    } catch (e) {
      throw new BrokerError('usage', `Cannot read ${o.fileFlag} ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`);
    }
  }
  const flag = o.flag && flags[attribute(o.flag)];
  if (Array.isArray(flag) ? flag.length : typeof flag === 'string') return flag as string | string[];
  const env = envValue(o, io.env);
  return o.repeatable ? env?.split(/[\s,]+/).filter(Boolean) : env;
}

/** Only the serve settings given as flags (`init: 'record'`); absent ones keep their old values. */
export function serveSettings(flags: InitOptions): Partial<Settings> {
  const out: Record<string, unknown> = {};
  for (const o of OPTION_LIST) {
    const v = o.init === 'record' && o.flag ? flags[attribute(o.flag)] : undefined;
    if (v !== undefined) out[o.name] = typeof v === 'string' ? parse(o, v) : v;
  }
  return out as Partial<Settings>;
}
