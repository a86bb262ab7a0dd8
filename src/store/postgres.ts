import { SQL } from 'bun';
import { BrokerError } from '../errors.ts';
import { PG_MIGRATIONS } from './pg-migrations.ts';
import type { ChangeFeed, ConnectionHead, ConnectionInfo, ConnectionRecord, ConnectionState, NewConnection, Store, Window } from './types.ts';

/** The channel the connections table's trigger notifies: payload `<keyid> <version>`, never a secret. */
export const CHANGES_CHANNEL = 'broker_connections';
/** pg_advisory_lock keys: (class, id). The class keeps broker's locks apart from anyone else's in the database. */
const LOCK_CLASS = 0x62726b; // 'brk'
const MIGRATION_LOCK = 1;
/** Refresh locks held at once by one instance (each holds a connection of its own pool during the upstream call). */
const LOCK_POOL = 8;
/** Queries of the main pool; a request does one or two. */
const POOL = 10;

interface Row {
  keyid: string;
  service: string;
  state: ConnectionState;
  check_tag: Uint8Array;
  sealed?: Uint8Array | null;
  version: number | string;
  created_at: number | string;
  last_refresh_at: number | string | null;
  last_used_at: number | string | null;
  state_changed_at: number | string | null;
  state_reason: string | null;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

function toInfo(r: Row): ConnectionInfo {
  return {
    keyid: r.keyid,
    service: r.service,
    state: r.state,
    version: Number(r.version),
    createdAt: Number(r.created_at),
    lastRefreshAt: num(r.last_refresh_at),
    lastUsedAt: num(r.last_used_at),
    stateChangedAt: num(r.state_changed_at),
    stateReason: r.state_reason,
  };
}

/** The URL without its password: what messages and logs may show. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

/**
 * What a failed query means to the caller: the store is unreachable or refused,
 * a 5xx with the server's error code, never the URL or a value.
 */
function storeError(e: unknown, what = 'The database could not be reached'): BrokerError {
  if (e instanceof BrokerError) return e;
  const err = e as { code?: string; errno?: string; message?: string };
  const code = err.errno ?? err.code ?? 'error';
  return new BrokerError('store_error', `${what} (${code}).`, {
    cause: e,
    hint: 'Check that PostgreSQL runs and accepts this broker (--database-url, its password, TLS); requests recover by themselves once it does.',
  });
}

class Feed implements ChangeFeed {
  live = false;
  private readonly listeners: { changed: (keyid: string, version: number) => void; status: (live: boolean) => void }[] = [];

  subscribe(changed: (keyid: string, version: number) => void, status: (live: boolean) => void): void {
    this.listeners.push({ changed, status });
  }

  set(live: boolean): void {
    // Every transition is reported, up again included: a feed that was down may have missed changes.
    this.live = live;
    for (const l of this.listeners) l.status(live);
  }

  notify(payload: string): void {
    const i = payload.lastIndexOf(' ');
    const keyid = payload.slice(0, i);
    const version = Number(payload.slice(i + 1));
    for (const l of this.listeners) l.changed(keyid, version);
  }
}

/**
 * The store in PostgreSQL, shared by every instance pointed at the same database.
 * It holds what the SQLite store holds (keyids, check tags, sealed envelopes,
 * states, dates) and the short-lived shared state, itself sealed by its callers.
 * Through Bun's built-in client (Bun.SQL): no dependency, and LISTEN/NOTIFY with
 * reconnection built in.
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly changes: Feed;

  private constructor(
    private readonly sql: SQL,
    private readonly locks: SQL,
    private readonly listener: SQL | null,
    feed: Feed,
    readonly where: string,
  ) {
    this.changes = feed;
  }

  /**
   * Connects, migrates (once, under an advisory lock, however many instances start
   * together) and, with `watch`, subscribes to the change feed.
   */
  static async open(url: string, opts: { password?: string; watch?: boolean; migrations?: readonly string[] } = {}): Promise<PostgresStore> {
    const where = redactDatabaseUrl(url);
    const options = { password: opts.password || undefined, connectionTimeout: 5, idleTimeout: 60 };
    // No statement may hold a request for longer than Duplicati waits for one (25 s):
    // a statement gives up after 10 s, a lock wait too (refresh locks set their own, 22 s),
    // and a transaction left idle (an instance stuck mid-refresh) is ended after 60 s.
    const bounded = { application_name: 'broker', statement_timeout: 10_000, lock_timeout: 10_000, idle_in_transaction_session_timeout: 60_000 };
    const sql = new SQL(url, { ...options, max: POOL, connection: bounded });
    const locks = new SQL(url, { ...options, max: LOCK_POOL, connection: { ...bounded, statement_timeout: 0 } });
    const feed = new Feed();
    let listener: SQL | null = null;
    try {
      await migrate(sql, opts.migrations ?? PG_MIGRATIONS, where);
      if (opts.watch) {
        listener = new SQL(url, { ...options, max: 1, idleTimeout: 0, connection: { application_name: 'broker-listen' }, onclose: () => feed.set(false) });
        await listener.listen(
          CHANGES_CHANNEL,
          (payload) => feed.notify(payload),
          () => feed.set(true),
        );
      }
    } catch (e) {
      await Promise.allSettled([sql.close(), locks.close(), listener?.close()]);
      throw storeError(e, `Cannot open the store in ${where}`);
    }
    return new PostgresStore(sql, locks, listener, feed, where);
  }

  /** The schema version recorded in the database. */
  async schemaVersion(): Promise<number> {
    return this.q(async () => Number((await this.sql`SELECT version FROM broker_schema`)[0]?.version ?? 0));
  }

  async get(keyid: string): Promise<ConnectionRecord | null> {
    const [r] = await this.q(() => this.sql<Row[]>`SELECT * FROM connections WHERE keyid = ${keyid}`);
    return r ? { ...toInfo(r), checkTag: r.check_tag, sealed: r.sealed ?? null } : null;
  }

  async getHead(keyid: string): Promise<ConnectionHead | null> {
    const [r] = await this.q(
      () => this.sql<Row[]>`SELECT keyid, service, state, check_tag, version, created_at, last_refresh_at, last_used_at, state_changed_at, state_reason
        FROM connections WHERE keyid = ${keyid}`,
    );
    return r ? { ...toInfo(r), checkTag: r.check_tag } : null;
  }

  async insert(c: NewConnection): Promise<void> {
    await this.insertMany([c]);
  }

  async insertMany(rows: readonly NewConnection[]): Promise<void> {
    for (let i = 0; i < rows.length; i += 2000) {
      const chunk = rows.slice(i, i + 2000).map((c) => ({
        keyid: c.keyid,
        service: c.service,
        state: 'active',
        check_tag: c.checkTag,
        sealed: c.sealed,
        version: 1,
        created_at: c.now,
        state_changed_at: c.now,
      }));
      await this.q(() => this.sql`INSERT INTO connections ${this.sql(chunk)}`);
    }
  }

  async *exportAll(): AsyncIterable<ConnectionRecord[]> {
    let after = '';
    for (;;) {
      const rows = await this.q(() => this.sql<Row[]>`SELECT * FROM connections WHERE keyid > ${after} ORDER BY keyid LIMIT 1000`);
      if (rows.length === 0) return;
      yield rows.map((r) => ({ ...toInfo(r), checkTag: r.check_tag, sealed: r.sealed ?? null }));
      after = rows[rows.length - 1]!.keyid;
    }
  }

  async importRows(rows: readonly ConnectionRecord[]): Promise<void> {
    if (rows.length === 0) return;
    const chunk = rows.map((r) => ({
      keyid: r.keyid,
      service: r.service,
      state: r.state,
      check_tag: r.checkTag,
      sealed: r.sealed,
      version: r.version,
      created_at: r.createdAt,
      last_refresh_at: r.lastRefreshAt,
      last_used_at: r.lastUsedAt,
      state_changed_at: r.stateChangedAt,
      state_reason: r.stateReason,
    }));
    await this.q(() => this.sql`INSERT INTO connections ${this.sql(chunk)}`);
  }

  async compareAndSwap(keyid: string, expectedVersion: number, sealed: Uint8Array, now: number): Promise<boolean> {
    const r = await this.q(
      () => this.sql`UPDATE connections SET sealed = ${sealed}, version = version + 1, last_refresh_at = ${now}
        WHERE keyid = ${keyid} AND version = ${expectedVersion} AND state = 'active'`,
    );
    return r.count === 1;
  }

  async setState(keyid: string, expectedVersion: number, state: ConnectionState, reason: string | null, now: number): Promise<boolean> {
    const r = await this.q(
      () => this.sql`UPDATE connections SET state = ${state}, state_changed_at = ${now}, state_reason = ${reason}, version = version + 1
        WHERE keyid = ${keyid} AND version = ${expectedVersion} AND state = 'active'`,
    );
    return r.count === 1;
  }

  async revoke(keyid: string, now: number): Promise<boolean> {
    const r = await this.q(
      () => this.sql`UPDATE connections SET state = 'revoked', sealed = NULL, version = version + 1, state_changed_at = ${now}, state_reason = 'revoked'
        WHERE keyid = ${keyid} AND state != 'revoked'`,
    );
    return r.count === 1;
  }

  async touch(keyid: string, now: number): Promise<void> {
    // Not a version bump (and so no notification): last use must not invalidate cached tokens.
    await this.q(() => this.sql`UPDATE connections SET last_used_at = ${now} WHERE keyid = ${keyid}`);
  }

  async countByState(): Promise<{ state: ConnectionState; count: number }[]> {
    const rows = await this.q(() => this.sql<{ state: ConnectionState; count: string }[]>`SELECT state, count(*) AS count FROM connections GROUP BY state`);
    return rows.map((r) => ({ state: r.state, count: Number(r.count) }));
  }

  async list(): Promise<ConnectionInfo[]> {
    const rows = await this.q(
      () => this.sql<Row[]>`SELECT keyid, service, state, check_tag, version, created_at, last_refresh_at, last_used_at, state_changed_at, state_reason
        FROM connections ORDER BY created_at, keyid`,
    );
    return rows.map(toInfo);
  }

  /**
   * A transaction on a pool of its own that holds an advisory lock on the keyid
   * while `fn` runs: `fn`'s reads and its compare-and-swap go through the main
   * pool and commit at once, so the next instance in line, let in when this
   * transaction ends, reads the rotated token. A killed instance's lock goes with
   * its connection. The wait is bounded by lock_timeout (then `conflict`).
   */
  async withRefreshLock<T>(keyid: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
    let ran = false;
    let abandoned = false;
    let done: { value: T } | undefined;
    const timedOut = () => new BrokerError('conflict', 'Another refresh of this connection has not finished in time.', { hint: 'Try again.' });
    // The lock wait is bounded by lock_timeout; this bounds the wait for a connection of
    // the lock pool too (every one busy with other refreshes). A transaction that gets
    // its connection after the caller gave up does nothing.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (ran) return;
        abandoned = true;
        reject(timedOut());
      }, waitMs + 1000);
    });
    const locked = this.locks.begin(async (tx) => {
      if (abandoned) return undefined as T;
      await tx.unsafe(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(waitMs))}`);
      await tx`SELECT pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${keyid}))`;
      if (abandoned) return undefined as T;
      ran = true;
      done = { value: await fn() };
      return done.value;
    });
    try {
      return (await Promise.race([locked, giveUp])) as T;
    } catch (e) {
      // The work is done and saved (its writes went through the main pool); only ending
      // the lock's transaction failed, and the lock ends with its connection anyway.
      if (done) return done.value;
      if (ran || e instanceof BrokerError) throw e;
      if ((e as { errno?: string }).errno === '55P03' || /lock timeout/i.test(String((e as Error).message))) throw timedOut();
      throw storeError(e);
    } finally {
      clearTimeout(timer);
      locked.catch(() => {});
    }
  }

  async putTransient(kind: string, key: string, value: Uint8Array, expiresAt: number, now: number): Promise<boolean> {
    const r = await this.q(async () => {
      await this.sql`DELETE FROM transients WHERE expires_at <= ${now}`;
      return this.sql`INSERT INTO transients (kind, key, value, expires_at) VALUES (${kind}, ${key}, ${value}, ${expiresAt})
        ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at WHERE transients.expires_at <= ${now}`;
    });
    return r.count === 1;
  }

  async getTransient(kind: string, key: string, now: number): Promise<{ value: Uint8Array; expiresAt: number } | null> {
    const [r] = await this.q(
      () => this.sql<{ value: Uint8Array; expires_at: string }[]>`SELECT value, expires_at FROM transients
        WHERE kind = ${kind} AND key = ${key} AND expires_at > ${now}`,
    );
    return r ? { value: r.value, expiresAt: Number(r.expires_at) } : null;
  }

  async takeTransient(kind: string, key: string, now: number): Promise<{ value: Uint8Array; expiresAt: number } | null> {
    const [r] = await this.q(
      () => this.sql<{ value: Uint8Array; expires_at: string }[]>`DELETE FROM transients WHERE kind = ${kind} AND key = ${key} RETURNING value, expires_at`,
    );
    return r && Number(r.expires_at) > now ? { value: r.value, expiresAt: Number(r.expires_at) } : null;
  }

  async replaceTransient(kind: string, key: string, expected: Uint8Array, value: Uint8Array, expiresAt: number, now: number): Promise<boolean> {
    const r = await this.q(
      () => this.sql`UPDATE transients SET value = ${value}, expires_at = ${expiresAt}
        WHERE kind = ${kind} AND key = ${key} AND value = ${expected} AND expires_at > ${now}`,
    );
    return r.count === 1;
  }

  async countTransient(kind: string, now: number): Promise<{ count: number; soonest: number | null }> {
    const [r] = await this.q(
      () => this.sql<{ n: string; soonest: string | null }[]>`SELECT count(*) AS n, min(expires_at) AS soonest FROM transients
        WHERE kind = ${kind} AND expires_at > ${now}`,
    );
    return { count: Number(r?.n ?? 0), soonest: num(r?.soonest ?? null) };
  }

  async fail(kind: string, key: string, windowMs: number, now: number): Promise<Window> {
    const [r] = await this.q(
      () => this.sql<{ count: number; reset_at: string }[]>`INSERT INTO failures (kind, key, count, reset_at) VALUES (${kind}, ${key}, 1, ${now + windowMs})
        ON CONFLICT (kind, key) DO UPDATE SET
          count = CASE WHEN failures.reset_at > ${now} THEN failures.count + 1 ELSE 1 END,
          reset_at = CASE WHEN failures.reset_at > ${now} THEN failures.reset_at ELSE ${now + windowMs} END
        RETURNING count, reset_at`,
    );
    if (Math.random() < 0.01) await this.q(() => this.sql`DELETE FROM failures WHERE reset_at <= ${now}`);
    return { count: Number(r!.count), resetAt: Number(r!.reset_at) };
  }

  async failures(kind: string, key: string, now: number): Promise<Window | null> {
    const [r] = await this.q(
      () => this.sql<{ count: number; reset_at: string }[]>`SELECT count, reset_at FROM failures WHERE kind = ${kind} AND key = ${key} AND reset_at > ${now}`,
    );
    return r ? { count: Number(r.count), resetAt: Number(r.reset_at) } : null;
  }

  async forgive(kind: string, key: string, now: number): Promise<void> {
    await this.q(async () => {
      await this.sql`UPDATE failures SET count = count - 1 WHERE kind = ${kind} AND key = ${key} AND reset_at > ${now}`;
      await this.sql`DELETE FROM failures WHERE kind = ${kind} AND key = ${key} AND count <= 0`;
    });
  }

  async claimNotification(key: string, now: number): Promise<boolean> {
    const r = await this.q(() => this.sql`INSERT INTO notifications (key, sent_at) VALUES (${key}, ${now}) ON CONFLICT (key) DO NOTHING`);
    return r.count === 1;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.sql.close({ timeout: 2 }), this.locks.close({ timeout: 2 }), this.listener?.close({ timeout: 2 })]);
  }

  private async q<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw storeError(e);
    }
  }
}

/**
 * Applies the missing schema steps, each in its own transaction, while holding a
 * session advisory lock: instances that start together wait for the first, then
 * find nothing left to do. A database migrated by a newer broker is left alone.
 */
async function migrate(sql: SQL, migrations: readonly string[], where: string): Promise<void> {
  const c = await sql.reserve();
  try {
    await c`SELECT pg_advisory_lock(${LOCK_CLASS}, ${MIGRATION_LOCK})`;
    try {
      await c.unsafe('CREATE TABLE IF NOT EXISTS broker_schema (version integer NOT NULL)');
      let [row] = await c`SELECT version FROM broker_schema`;
      if (!row) {
        await c`INSERT INTO broker_schema (version) VALUES (0)`;
        row = { version: 0 };
      }
      const current = Number(row.version);
      if (current > migrations.length) {
        throw new BrokerError(
          'store_error',
          `The store in ${where} has schema version ${current}, newer than this broker understands (${migrations.length}): a newer broker wrote it.`,
          { hint: 'Upgrade broker to that version or newer; the store was left untouched.' },
        );
      }
      for (let v = current; v < migrations.length; v++) {
        await c.unsafe(`BEGIN; ${migrations[v]}; UPDATE broker_schema SET version = ${v + 1}; COMMIT;`).catch(async (e: unknown) => {
          await c.unsafe('ROLLBACK').catch(() => {});
          throw e;
        });
      }
    } finally {
      await c`SELECT pg_advisory_unlock(${LOCK_CLASS}, ${MIGRATION_LOCK})`.catch(() => {});
    }
  } finally {
    c.release();
  }
}
