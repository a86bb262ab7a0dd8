import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BrokerError } from '../errors.ts';

/** BROKER_HOME, else $XDG_CONFIG_HOME/broker, else ~/.config/broker. */
export function brokerHome(env: Record<string, string | undefined>): string {
  if (env.BROKER_HOME) return env.BROKER_HOME;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'broker');
}

export const SETTINGS_FILE = 'settings.json';
export const STORE_FILE = 'broker.db';

/**
 * Creates the folder 0700, or tightens an existing one we own: it holds the app
 * secret and the sealed store, and group or world access to it is never intended.
 */
export function ensureHome(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = statSync(dir);
    if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch (e) {
    throw new BrokerError('store_error', `Cannot create or secure ${dir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`, {
      cause: e,
      hint: 'Set BROKER_HOME to a folder this user can write.',
    });
  }
}
