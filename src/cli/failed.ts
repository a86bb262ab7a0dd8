import { asBrokerError } from '../errors.ts';
import { EXIT_CODE } from './exit-codes.ts';
import type { Io } from './io.ts';
import { sayError } from './voice.ts';

/** What a command that threw says, and its exit code: one place for main.ts and bin/broker.ts's quick `list`. */
export function failed(err: unknown, io: Io): number {
  const e = asBrokerError(err);
  if ((err as Error)?.name === 'ExitPromptError') {
    sayError(io, 'cancelled; nothing was changed');
    return 130;
  }
  // serve --log-format json has already written it as a JSON line.
  if (!e.options.logged) sayError(io, e.message, e.hint);
  if (e.code === 'internal' && io.env.BROKER_DEBUG) io.err(String((e.cause as Error)?.stack ?? e.cause));
  return EXIT_CODE[e.code];
}
