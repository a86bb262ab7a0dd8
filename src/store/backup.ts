import { Database } from 'bun:sqlite';
import { chmodSync, copyFileSync, renameSync, rmSync } from 'node:fs';
import { BrokerError } from '../errors.ts';
import { MIGRATIONS } from './migrations.ts';
import type { SqliteStore } from './store.ts';

/**
 * A backup is one SQLite file: a consistent snapshot of the store (`VACUUM INTO`,
 * taken while `serve` may be writing) plus a `broker_backup` table with the
 * settings file's text and facts about the backup. One file, so there is no moment
 * where the settings and the connections come from different times or get separated.
 * It holds the app secret (in the settings) and the sealed tokens, never an AuthID.
 */
export const BACKUP_FORMAT = 'broker-backup-1';

export interface BackupInfo {
  /** settings.json as it was, or null when there was none. */
  settings: string | null;
  schemaVersion: number;
  brokerVersion: string;
  createdAt: string;
  connections: number;
}

const tmpName = (file: string) => `${file}.tmp-${process.pid}`;

export function writeBackup(store: SqliteStore, file: string, meta: { settings: string | null; brokerVersion: string; now: number }): BackupInfo {
  const tmp = tmpName(file);
  rmSync(tmp, { force: true });
  try {
    store.snapshotTo(tmp);
    const db = new Database(tmp, { strict: true });
    let info: BackupInfo;
    try {
      info = {
        settings: meta.settings,
        schemaVersion: (db.query('PRAGMA user_version').get() as { user_version: number }).user_version,
        brokerVersion: meta.brokerVersion,
        createdAt: new Date(meta.now).toISOString(),
        connections: (db.query('SELECT count(*) AS n FROM connections').get() as { n: number }).n,
      };
      db.transaction(() => {
        db.exec('CREATE TABLE broker_backup (name TEXT PRIMARY KEY, value TEXT) STRICT');
        const put = db.query('INSERT INTO broker_backup (name, value) VALUES (?, ?)');
        put.run('format', BACKUP_FORMAT);
        put.run('settings', info.settings);
        put.run('broker_version', info.brokerVersion);
        put.run('created_at', info.createdAt);
      })();
    } finally {
      db.close();
    }
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
    return info;
  } catch (e) {
    rmSync(tmp, { force: true });
    if (e instanceof BrokerError) throw e;
    throw new BrokerError('store_error', `The backup could not be written to ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`, {
      cause: e,
      hint: 'Check that the folder exists, is writable, and has free space.',
    });
  }
}

export function readBackup(file: string): BackupInfo {
  let db: Database;
  try {
    db = new Database(file, { readonly: true, strict: true });
  } catch (e) {
    throw notABackup(file, e);
  }
  try {
    const rows = db.query('SELECT name, value FROM broker_backup').all() as { name: string; value: string | null }[];
    const get = (n: string) => rows.find((r) => r.name === n)?.value ?? null;
    if (get('format') !== BACKUP_FORMAT) throw notABackup(file);
    const schemaVersion = (db.query('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (schemaVersion > MIGRATIONS.length) {
      throw new BrokerError(
        'store_error',
        `The backup ${file} has store schema version ${schemaVersion}, newer than this broker understands (${MIGRATIONS.length}).`,
        {
          hint: 'Upgrade broker to the version that made the backup (or newer), then restore.',
        },
      );
    }
    return {
      settings: get('settings'),
      schemaVersion,
      brokerVersion: get('broker_version') ?? 'unknown',
      createdAt: get('created_at') ?? 'unknown',
      connections: (db.query('SELECT count(*) AS n FROM connections').get() as { n: number }).n,
    };
  } catch (e) {
    if (e instanceof BrokerError) throw e;
    throw notABackup(file, e);
  } finally {
    db.close();
  }
}

function notABackup(file: string, cause?: unknown): BrokerError {
  return new BrokerError('invalid_request', `${file} is not a broker backup.`, { cause, hint: 'Give a file made by `broker backup`.' });
}

/**
 * Puts the backup's connections at `storePath` (which nothing may have open): the
 * copy loses the settings table, and VACUUM with secure_delete leaves no page of
 * the app secret behind in the store file. Old -wal/-shm files of a replaced store
 * go too, or SQLite would replay them over the restored file.
 */
export function restoreStore(file: string, storePath: string): void {
  const tmp = tmpName(storePath);
  rmSync(tmp, { force: true });
  try {
    copyFileSync(file, tmp);
    chmodSync(tmp, 0o600);
    const db = new Database(tmp, { strict: true });
    try {
      db.exec('PRAGMA secure_delete = ON');
      db.exec('DROP TABLE broker_backup');
      db.exec('VACUUM');
    } finally {
      db.close();
    }
    for (const f of [`${tmp}-wal`, `${tmp}-shm`, `${tmp}-journal`, `${storePath}-wal`, `${storePath}-shm`]) rmSync(f, { force: true });
    renameSync(tmp, storePath);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new BrokerError('store_error', `The store could not be restored to ${storePath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`, {
      cause: e,
      hint: 'Check permissions and free space in BROKER_HOME.',
    });
  }
}

/** Connections in the store file at `path`, without migrating or creating it (0 when there is none). */
export function countConnections(path: string): number {
  let db: Database;
  try {
    // Read-write without create: a read-only open of a WAL file can fail when its -shm is gone.
    db = new Database(path, { readwrite: true, create: false, strict: true });
  } catch {
    return 0;
  }
  try {
    return (db.query('SELECT count(*) AS n FROM connections').get() as { n: number }).n;
  } catch {
    // A file that is not a store at all is not "empty" either: let --force decide.
    return Number.POSITIVE_INFINITY;
  } finally {
    db.close();
  }
}
