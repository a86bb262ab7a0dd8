import { Database, type Statement } from 'bun:sqlite';
import { chmodSync, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BrokerError } from '../errors.ts';
import { MIGRATIONS } from './migrations.ts';

import { MemoryEphemera } from './memory.ts';
import { INFO_COLUMNS, LIST_SQL, type Row, toInfo } from './sqlite-rows.ts';
import type { ChangeFeed, ConnectionInfo, ConnectionRecord, ConnectionHead, ConnectionState, NewConnection, Store, Window } from './types.ts';

export type * from './types.ts';

/**
 * The connection store: one SQLite file in BROKER_HOME. WAL lets `broker list` and
 * `broker revoke` work while `serve` holds it open; synchronous=FULL because a
 * committed refresh-token rotation must survive a power cut, and rotations are
 * rare enough (one per connection per hour) for the fsync not to matter.
 */
/**
 * SQLite's change feed, by asking: `PRAGMA data_version` changes when another
 * connection (`broker revoke`, `broker list`'s migration, another process) has
 * committed to the file. It does not change for this connection's own writes, so
 * the store reports those itself (`wrote`). Either way every remembered row is
 * forgotten: SQLite does not say which rows changed, and writes are rare (a
 * rotation per connection per hour, a last-use stamp per minute).
 *
 * The statement takes a read lock (two fcntl(2) calls) on every request, about a
 * quarter of a cache hit's CPU time. Reading SQLite's WAL-index header from the
 * -shm file instead was tried and removed: any open and close of that file by
 * this process (Bun.mmap's) drops the POSIX locks SQLite holds on it, after which
 * another process may rebuild the file and both checks can miss a revoke.
 */
class SqliteFeed implements ChangeFeed {
  readonly live = true;
  private last: number;
  private readonly resets: (() => void)[] = [];

  constructor(private readonly dataVersion: () => number) {
    this.last = dataVersion();
  }

  subscribe(_changed: (keyid: string, version: number) => void, status: (live: boolean) => void, reset?: () => void): void {
    this.resets.push(reset ?? (() => status(true)));
  }

  sync(): void {
    let now: number;
    try {
      now = this.dataVersion();
    } catch {
      // The file cannot be read now: forget everything; the row read that follows reports the error.
      this.wrote();
      return;
    }
    if (now !== this.last) {
      this.last = now;
      this.wrote();
    }
  }

  /** This connection wrote (or cannot tell): nothing remembered may be trusted. */
  wrote(): void {
    for (const r of this.resets) r();
  }
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly changes: SqliteFeed;
  private readonly ephemera = new MemoryEphemera();
  private readonly db: Database;
  private readonly stmts: {
    get: Statement<Row, [string]>;
    getHead: Statement<Omit<Row, 'sealed'>, [string]>;
    insert: Statement<unknown, [string, string, Uint8Array, Uint8Array, number]>;
    cas: Statement<unknown, [Uint8Array, number, string, number]>;
    setState: Statement<unknown, [ConnectionState, number, string | null, string, number]>;
    revoke: Statement<unknown, [number, string]>;
    touch: Statement<unknown, [number, string]>;
    countByState: Statement<{ state: ConnectionState; count: number }, []>;
    list: Statement<Omit<Row, 'check_tag' | 'sealed'>, []>;
    page: Statement<Row, [string]>;
    importRow: Statement<
      unknown,
      [string, string, string, Uint8Array, Uint8Array | null, number, number, number | null, number | null, number | null, string | null]
    >;
  };

  private constructor(
    db: Database,
    readonly where: string,
  ) {
    this.db = db;
    const dataVersion = db.query<{ data_version: number }, []>('PRAGMA data_version');
    this.changes = new SqliteFeed(() => dataVersion.get()!.data_version);
    this.stmts = {
      get: db.query(`SELECT ${INFO_COLUMNS}, check_tag, sealed FROM connections WHERE keyid = ?`),
      getHead: db.query(`SELECT ${INFO_COLUMNS}, check_tag FROM connections WHERE keyid = ?`),
      insert: db.query(
        `INSERT INTO connections (keyid, service, state, check_tag, sealed, version, created_at, state_changed_at)
         VALUES (?1, ?2, 'active', ?3, ?4, 1, ?5, ?5)`,
      ),
      cas: db.query(
        `UPDATE connections SET sealed = ?1, version = version + 1, last_refresh_at = ?2
         WHERE keyid = ?3 AND version = ?4 AND state = 'active'`,
      ),
      setState: db.query(
        `UPDATE connections SET state = ?1, state_changed_at = ?2, state_reason = ?3, version = version + 1
         WHERE keyid = ?4 AND version = ?5 AND state = 'active'`,
      ),
      revoke: db.query(
        `UPDATE connections SET state = 'revoked', sealed = NULL, version = version + 1,
           state_changed_at = ?1, state_reason = 'revoked'
         WHERE keyid = ?2 AND state != 'revoked'`,
      ),
      // Not a version bump: last use is bookkeeping and must not invalidate cached tokens.
      touch: db.query(`UPDATE connections SET last_used_at = ?1 WHERE keyid = ?2`),
      countByState: db.query(`SELECT state, count(*) AS count FROM connections GROUP BY state`),
      list: db.query(LIST_SQL),
      page: db.query(`SELECT ${INFO_COLUMNS}, check_tag, sealed FROM connections WHERE keyid > ? ORDER BY keyid LIMIT 1000`),
      importRow: db.query(
        `INSERT INTO connections (keyid, service, state, check_tag, sealed, version, created_at, last_refresh_at, last_used_at, state_changed_at, state_reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
    };
  }

  /**
   * Opens (creating and migrating as needed) the store at `path`. Before migrating
   * an existing store it saves a copy of it (see backupBeforeMigration). `migrations`
   * is for tests that need a schema newer than the released one.
   */
  static open(path: string, opts: { migrations?: readonly string[] } = {}): SqliteStore {
    const migrations = opts.migrations ?? MIGRATIONS;
    let db: Database;
    try {
      db = new Database(path, { create: true, strict: true });
    } catch (e) {
      throw new BrokerError('store_error', `Cannot open the store at ${path}.`, {
        cause: e,
        hint: 'Check that BROKER_HOME exists, is writable by this user, and the disk is not full.',
      });
    }
    try {
      // Before anything writes to it: a newer broker's store is left exactly as it is.
      refuseNewer(db, path, migrations.length);
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA synchronous = FULL');
      db.exec('PRAGMA busy_timeout = 5000');
      db.exec('PRAGMA foreign_keys = ON');
      // Deleted envelopes are overwritten, not left in free pages for a later copy of the file.
      db.exec('PRAGMA secure_delete = ON');
      migrate(db, path, migrations);
    } catch (e) {
      db.close();
      if (e instanceof BrokerError) throw e;
      throw new BrokerError('store_error', `Cannot prepare the store at ${path}: ${(e as Error).message}`, {
        cause: e,
        hint: 'Check permissions and free space in BROKER_HOME.',
      });
    }
    // SQLite creates the -wal/-shm companions with the process umask; tighten them too.
    for (const f of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
    return new SqliteStore(db, path);
  }

  /**
   * A consistent copy of the whole store into the new file `file` (one read
   * transaction: writers in other processes, like a running `serve`, carry on).
   */
  snapshotTo(file: string): void {
    this.write(() => this.db.run('VACUUM INTO ?', [file]));
    chmodSync(file, 0o600);
  }

  /** The schema version (PRAGMA user_version). */
  schemaVersion(): number {
    return userVersion(this.db);
  }

  async get(keyid: string): Promise<ConnectionRecord | null> {
    const r = this.stmts.get.get(keyid);
    if (!r) return null;
    return { ...toInfo(r), checkTag: r.check_tag, sealed: r.sealed };
  }

  /** The row without its envelope: what every request needs to authenticate, without copying the box. */
  async getHead(keyid: string): Promise<ConnectionHead | null> {
    const r = this.stmts.getHead.get(keyid);
    return r ? { ...toInfo(r), checkTag: r.check_tag } : null;
  }

  async insert(c: NewConnection): Promise<void> {
    this.write(() => this.stmts.insert.run(c.keyid, c.service, c.checkTag, c.sealed, c.now));
  }

  /** Many rows in one transaction (one fsync): for imports and for seeding benchmarks. */
  async insertMany(rows: readonly NewConnection[]): Promise<void> {
    this.write(() =>
      this.db.transaction(() => {
        for (const c of rows) this.stmts.insert.run(c.keyid, c.service, c.checkTag, c.sealed, c.now);
      })(),
    );
  }

  /** This connection's journal mode and synchronous level (0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA): what a power cut can undo. */
  durability(): { journalMode: string; synchronous: number } {
    const { journal_mode } = this.db.query('PRAGMA journal_mode').get() as { journal_mode: string };
    const { synchronous } = this.db.query('PRAGMA synchronous').get() as { synchronous: number };
    return { journalMode: journal_mode, synchronous };
  }

  /** Folds the WAL back into the main file (after a bulk write). */
  checkpoint(): void {
    this.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  }

  /** Replaces the envelope only if nobody else changed the row since `expectedVersion`. */
  async compareAndSwap(keyid: string, expectedVersion: number, sealed: Uint8Array, now: number): Promise<boolean> {
    return this.write(() => this.stmts.cas.run(sealed, now, keyid, expectedVersion)).changes === 1;
  }

  async setState(keyid: string, expectedVersion: number, state: ConnectionState, reason: string | null, now: number): Promise<boolean> {
    return this.write(() => this.stmts.setState.run(state, now, reason, keyid, expectedVersion)).changes === 1;
  }

  /** Wipes the envelope for good. Returns false if there was nothing active to revoke. */
  async revoke(keyid: string, now: number): Promise<boolean> {
    const changed = this.write(() => this.stmts.revoke.run(now, keyid)).changes === 1;
    // The old envelope still sits in the WAL until a checkpoint copies the page over it;
    // best effort (a reader may hold it back), and the next checkpoint finishes the job.
    if (changed) {
      try {
        this.db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      } catch {
        /* another connection is busy; SQLite checkpoints again on its own */
      }
    }
    return changed;
  }

  async touch(keyid: string, now: number): Promise<void> {
    this.write(() => this.stmts.touch.run(now, keyid));
  }

  async countByState(): Promise<{ state: ConnectionState; count: number }[]> {
    return this.stmts.countByState.all();
  }

  async list(): Promise<ConnectionInfo[]> {
    return this.stmts.list.all().map(toInfo);
  }

  /**
   * Claims the right to send the notification for `key` (a cause, see src/notify):
   * true for the first caller ever, in any process on this store; false after.
   */
  async claimNotification(key: string, now: number): Promise<boolean> {
    // Prepared on first use (db.query caches it): a store opened with a test's older schema has no such table.
    return (
      this.write(() => this.db.query<unknown, [string, number]>('INSERT OR IGNORE INTO notifications (key, sent_at) VALUES (?1, ?2)').run(key, now)).changes ===
      1
    );
  }

  async close(): Promise<void> {
    this.db.close();
  }

  /** Every row, a page at a time. */
  async *exportAll(): AsyncIterable<ConnectionRecord[]> {
    let after = '';
    for (;;) {
      const rows = this.stmts.page.all(after);
      if (rows.length === 0) return;
      yield rows.map((r) => ({ ...toInfo(r), checkTag: r.check_tag, sealed: r.sealed }));
      after = rows[rows.length - 1]!.keyid;
    }
  }

  async importRows(rows: readonly ConnectionRecord[]): Promise<void> {
    this.write(() =>
      this.db.transaction(() => {
        for (const r of rows) {
          this.stmts.importRow.run(
            r.keyid,
            r.service,
            r.state,
            r.checkTag,
            r.sealed,
            r.version,
            r.createdAt,
            r.lastRefreshAt,
            r.lastUsedAt,
            r.stateChangedAt,
            r.stateReason,
          );
        }
      })(),
    );
  }

  /** One `serve` per SQLite store: the in-process single flight (TokenService) is the whole lock. */
  withRefreshLock<T>(_keyid: string, _waitMs: number, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  async putTransient(kind: string, key: string, value: Uint8Array, expiresAt: number, now: number): Promise<boolean> {
    return this.ephemera.putTransient(kind, key, value, expiresAt, now);
  }

  async getTransient(kind: string, key: string, now: number): Promise<{ value: Uint8Array; expiresAt: number } | null> {
    return this.ephemera.getTransient(kind, key, now);
  }

  async takeTransient(kind: string, key: string, now: number): Promise<{ value: Uint8Array; expiresAt: number } | null> {
    return this.ephemera.takeTransient(kind, key, now);
  }

  async replaceTransient(kind: string, key: string, expected: Uint8Array, value: Uint8Array, expiresAt: number, now: number): Promise<boolean> {
    return this.ephemera.replaceTransient(kind, key, expected, value, expiresAt, now);
  }

  async countTransient(kind: string, now: number): Promise<{ count: number; soonest: number | null }> {
    return this.ephemera.countTransient(kind, now);
  }

  async fail(kind: string, key: string, windowMs: number, now: number): Promise<Window> {
    return this.ephemera.fail(kind, key, windowMs, now);
  }

  async failures(kind: string, key: string, now: number): Promise<Window | null> {
    return this.ephemera.failures(kind, key, now);
  }

  async forgive(kind: string, key: string, _now: number): Promise<void> {
    this.ephemera.forgive(kind, key);
  }

  private write<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw new BrokerError('store_error', `The store could not be written: ${(e as Error).message}.`, {
        cause: e,
        hint: 'Check free space and permissions in BROKER_HOME.',
      });
    } finally {
      // data_version does not move for this connection's own writes: say so here, whatever the outcome.
      this.changes.wrote();
    }
  }
}

/** How many pre-migration copies stay next to the store; older ones are deleted. */
export const KEEP_MIGRATION_BACKUPS = 3;

/** `broker.db.bak-v1`: the store as it was at schema version 1, saved before migrating it further. */
export const migrationBackupName = (storePath: string, schemaVersion: number) => `${storePath}.bak-v${schemaVersion}`;

function userVersion(db: Database): number {
  return (db.query('PRAGMA user_version').get() as { user_version: number }).user_version;
}

function refuseNewer(db: Database, path: string, known: number): void {
  const current = userVersion(db);
  if (current > known) {
    throw new BrokerError(
      'store_error',
      `The store at ${path} has schema version ${current}, newer than this broker understands (${known}): a newer broker wrote it.`,
      { hint: 'Upgrade broker to that version or newer; the store was left untouched.' },
    );
  }
}

function migrate(db: Database, path: string, migrations: readonly string[]): void {
  const current = userVersion(db);
  // A new, empty file (version 0) has nothing to lose.
  if (current > 0 && current < migrations.length) backupBeforeMigration(db, path, current);
  for (let v = current; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.exec(`PRAGMA user_version = ${v + 1}`);
    })();
  }
}

/**
 * Upgrades never lose data: the store as it is, before the first migration step,
 * goes to `broker.db.bak-v<old schema version>` (0600, consistent even while an
 * older `serve` still writes), and only the newest KEEP_MIGRATION_BACKUPS stay.
 * Written to a temporary name first, so a half-written copy never carries the name.
 */
function backupBeforeMigration(db: Database, path: string, schemaVersion: number): void {
  const target = migrationBackupName(path, schemaVersion);
  const tmp = `${target}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  db.run('VACUUM INTO ?', [tmp]);
  chmodSync(tmp, 0o600);
  renameSync(tmp, target);
  const prefix = `${basename(path)}.bak-v`;
  const old = readdirSync(dirname(path))
    .filter((f) => f.startsWith(prefix) && /^\d+$/.test(f.slice(prefix.length)))
    .sort((a, b) => Number(b.slice(prefix.length)) - Number(a.slice(prefix.length)))
    .slice(KEEP_MIGRATION_BACKUPS);
  for (const f of old) rmSync(join(dirname(path), f), { force: true });
}
