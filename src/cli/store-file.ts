import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureHome, STORE_FILE } from '../config/home.ts';
import { envValue, OPTIONS } from '../config/options.ts';
import { DATABASE_PASSWORD_CREDENTIAL, readSettings } from '../config/settings.ts';
import { BrokerError } from '../errors.ts';
import { SqliteStore } from '../store/store.ts';
import type { Store } from '../store/types.ts';

/** Where the store is: a PostgreSQL URL (BROKER_DATABASE_URL, else the setting), or null for BROKER_HOME's SQLite file. */
export function databaseUrl(home: string, env: Record<string, string | undefined>): string | null {
  return envValue(OPTIONS.databaseUrl, env) ?? readSettings(home).databaseUrl ?? null;
}

/**
 * The database user's password, first source wins: the URL itself, the file
 * named by --database-password-file, the systemd credential `database-password`
 * (LoadCredential=), PGPASSWORD. Never logged, never shown.
 */
export function databasePassword(home: string, env: Record<string, string | undefined>, url: string): string | undefined {
  if (new URL(url).password) return undefined;
  const file = readSettings(home).databasePasswordFile;
  const credential = env.CREDENTIALS_DIRECTORY ? join(env.CREDENTIALS_DIRECTORY, DATABASE_PASSWORD_CREDENTIAL) : undefined;
  for (const path of [file, credential]) {
    if (!path || (path === credential && !existsSync(path))) continue;
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (e) {
      throw new BrokerError('config_invalid', `Cannot read the database password file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`, {
        cause: e,
        hint: 'Check --database-password-file (readable by the broker only).',
      });
    }
  }
  return env.PGPASSWORD || undefined;
}

/**
 * The store this BROKER_HOME uses: PostgreSQL when a database URL is set, else
 * the SQLite file. `watch` follows the database's change feed (serve only).
 */
export async function openStore(home: string, env: Record<string, string | undefined> = {}, opts: { watch?: boolean } = {}): Promise<Store> {
  const url = databaseUrl(home, env);
  if (url) return openPostgres(url, databasePassword(home, env, url), opts.watch);
  ensureHome(home);
  return SqliteStore.open(join(home, STORE_FILE));
}

export async function openPostgres(url: string, password?: string, watch?: boolean): Promise<Store> {
  // Loaded only when used: the SQLite-only path does not pay for it.
  const { PostgresStore } = await import('../store/postgres.ts');
  return PostgresStore.open(url, { password, watch });
}
