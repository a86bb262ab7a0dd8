import { brokerHome } from '../config/home.ts';
import { EXIT } from './exit-codes.ts';
import { failed } from './failed.ts';
import { processIo } from './io.ts';
import { listCommand } from './list.ts';

/**
 * `broker list` and `broker list --json` exactly, without commander: building the
 * whole program (every command and its options) costs more than listing. Anything
 * else (`list --help`, extra arguments) goes through main.ts as before;
 * bin/broker.ts chooses.
 */
export async function quickList(args: readonly string[]): Promise<number> {
  // As main.ts: files the broker creates are for its user only.
  process.umask(0o077);
  const io = processIo();
  try {
    await listCommand(brokerHome(io.env), io, { json: args[1] === '--json' });
    return EXIT.ok;
  } catch (err) {
    return failed(err, io);
  }
}
