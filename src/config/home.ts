import { chmodSync, mkdirSync, type Stats, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BrokerError } from '../errors.ts';

/** BROKER_HOME, else $XDG_CONFIG_HOME/broker, else ~/.config/broker. */
export function brokerHome(env: Record<string, string | undefined>): string {
  if (env.BROKER_HOME) return env.BROKER_HOME;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'broker');
}

export { SETTINGS_FILE, STORE_FILE } from './files.ts';

/**
 * Creates the folder 0700, or tightens an existing one we own: it holds the app
 * secret and the sealed store, and group or world access to it is never intended.
 *
 * A folder someone else owns, or one anyone may write to, is refused rather than
 * chmodded: its owner (or anyone, for the latter) may already have put a
 * settings.json or a store there, or may replace ours later, so tightening the
 * mode now would not make its contents ours.
 */
export function ensureHome(dir: string): void {
  let st: Stats;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    st = statSync(dir);
  } catch (e) {
    throw new BrokerError('store_error', `Cannot create or secure ${dir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`, {
      cause: e,
      hint: 'Set BROKER_HOME to a folder this user can write.',
    });
  }
  const uid = process.getuid?.();
  if (!st.isDirectory()) throw unsafeHome(dir, 'is not a folder');
  if (uid !== undefined && st.uid !== uid) throw unsafeHome(dir, `belongs to another user (uid ${st.uid}, this is uid ${uid})`);
  if (st.mode & 0o002) throw unsafeHome(dir, `is writable by everyone (mode ${(st.mode & 0o7777).toString(8)})`);
  try {
    if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (e) {
    throw new BrokerError('store_error', `Cannot create or secure ${dir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`, {
      cause: e,
      hint: 'Set BROKER_HOME to a folder this user can write.',
    });
  }
}

function unsafeHome(dir: string, why: string): BrokerError {
  return new BrokerError('config_invalid', `BROKER_HOME ${dir} ${why}; the broker keeps its app secret and store only in a folder of its own.`, {
    hint: 'Point BROKER_HOME at a new folder (the broker creates it 0700), or move the files into one owned by this user and not writable by others.',
  });
}
