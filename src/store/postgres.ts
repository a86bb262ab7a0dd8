import { AsyncLocalStorage } from 'node:async_hooks';
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
/**
 * The client-side bound of every query, waiting for a connection included: a
 * network that drops packets without a reset would otherwise hold a request until
 * TCP gives up (about 15 minutes). Above statement_timeout (the server's own
 * bound, with a clearer error), below Duplicati's 25 s per attempt.
 */
export const QUERY_TIMEOUT_MS = 12_000;
/**
 * The bound of the work done under a refresh lock (reading the row, the provider's
 * budget of 20 s, writing the new token) as its caller sees it: then the caller
 * gets a store_error, while the work itself goes on, the lock held, until it ends.
 */
export const REFRESH_WORK_MS = 30_000;
/**
 * How long the refresh lock's transaction may sit idle (it does while the work
 * runs) before the server ends it and so releases the lock: well above the work's
 * own worst case (a few queries of QUERY_TIMEOUT_MS, and the provider's budget),
 * so that a lock is lost only when its instance froze or died.
 */
const LOCK_IDLE_MS = 120_000;
/**
 * How often an instance sends itself a notification through the main pool, to
 * learn that its listening connection still delivers: a connection that a NAT or
 * firewall dropped without a reset stays open here, silently.
 */
export const HEARTBEAT_MS = 10_000;
/** The prefix of a heartbeat's payload (a change's payload is `<keyid> <version>`, one space, and keyids start with `bk1`). */
const PING = 'ping ';
/** A revoke's bounded wait for its notification to reach the other instances (see `revoke`). */
const REVOKE_SETTLE = { echoMs: 2_000, afterEchoMs: 150, withoutFeedMs: 500 } as const;

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

/** What a write made under a refresh lock reports: whether the lock was still held, and the rows written. */
interface Guarded {
  held: boolean;
  n: number;
}

/**
 * A write of a connection's row ($1 keyid, $2 expected version; `set` uses $4…)
 * made only while backend $3 still holds the refresh lock of that connection, or
 * always when $3 is null (outside a refresh: the CLI, imports). A refresh whose
 * lock is gone (its session ended: by the server, killed, its connection lost)
 * must not write, since another instance may already be refreshing with the same
 * refresh token: it fails with store_error instead, and tokens.ts keeps a new
 * token in memory and writes it first at the next request. The write still goes
 * through the main pool and commits at once: the token is saved before anyone is
 * answered, as before. (Writing on the lock's own transaction would be atomic too,
 * but would commit only after the caller has the token, and a failed commit would
 * then lose a rotation that nobody kept.)
 */
const LOCKED_UPDATE = (set: string) => `WITH held AS (
    SELECT $3::int IS NULL OR EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $3::int
      AND classid = ${LOCK_CLASS}::oid AND objid = hashtext($1)::oid AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS ok
  ), changed AS (
    UPDATE connections SET ${set} WHERE keyid = $1 AND version = $2 AND state = 'active' AND (SELECT ok FROM held) RETURNING 1
  )
  SELECT (SELECT ok FROM held) AS held, (SELECT count(*) FROM changed)::int AS n`;

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

/**
 * Parameters of a database URL that carry a secret (libpq's and Bun.SQL's names,
 * compared without case): `password` (Bun.SQL takes the password from it) and
 * `sslpassword` (the client key's passphrase). File paths such as `sslkey` stay.
 */
const SECRET_PARAMS = new Set(['password', 'sslpassword']);

/** The URL without its password, in its user part or as a parameter: what messages and logs may show. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    for (const name of [...u.searchParams.keys()]) if (SECRET_PARAMS.has(name.toLowerCase())) u.searchParams.delete(name);
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

const HINT = 'Check that PostgreSQL runs and accepts this broker (--database-url, its password, TLS); requests recover by themselves once it does.';

/**
 * What a failed query means to the caller: the store is unreachable or refused,
 * a 5xx with the server's error code, never the URL or a value.
 */
function storeError(e: unknown, what = 'The database could not be reached'): BrokerError {
  if (e instanceof BrokerError) return e;
  const err = e as { code?: string; errno?: string; message?: string };
  const code = err.errno ?? err.code ?? 'error';
  return new BrokerError('store_error', `${what} (${code}).`, { cause: e, hint: HINT });
}

function noAnswer(ms: number): BrokerError {
  return new BrokerError('store_error', `The database did not answer within ${ms / 1000} s.`, {
    hint: 'Check that PostgreSQL runs and that the network to it passes; requests recover by themselves once it does.',
  });
}

/** `work`, or a rejection with `timeout()` after `ms`, whichever comes first. */
async function bounded<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
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
    for (const w of this.waiters) if (w.keyid === keyid) w.done();
  }

  private readonly waiters = new Set<{ keyid: string; done: () => void }>();

  /** Resolves when a change of `keyid` comes back through the feed, or after `ms`. */
  seen(keyid: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const w = { keyid, done: () => finish() };
      const timer = setTimeout(() => finish(), ms);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve();
      };
      this.waiters.add(w);
    });
  }
}

/** How often the listening connection is checked, and after how long without a ping of its own it counts as lost. */
export interface Heartbeat {
  intervalMs: number;
  /** Default 1.5 intervals: checked at every beat, so a silent connection is noticed within 2 intervals. */
  deadlineMs?: number;
  now?: () => number;
}

/**
 * The listening connection, and the heartbeat that checks it: every beat, a
 * `ping <instance> <n>` notification goes out through the main pool on the
 * changes channel. The feed is up only while this instance's own pings come back
 * on the listening connection; when none has for the deadline, the feed goes down
 * (every request reads the row) and a new listening connection replaces the old
 * one. Whatever Bun.SQL's own reconnection does, the feed is up again only once a
 * ping has come back, and every transition empties what readers remember.
 */
class Listening {
  private sql: SQL | null = null;
  /** Callbacks of a replaced connection are ignored. */
  private generation = 0;
  private readonly id = crypto.randomUUID().slice(0, 8);
  private seq = 0;
  private lastPing = 0;
  private pinging = false;
  private connecting = false;
  private closed = false;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly intervalMs: number;
  private readonly deadlineMs: number;
  private readonly now: () => number;

  constructor(
    private readonly open: (onclose: () => void) => SQL,
    private readonly feed: Feed,
    private readonly send: (payload: string) => Promise<unknown>,
    beat: Heartbeat,
  ) {
    this.intervalMs = beat.intervalMs;
    this.deadlineMs = beat.deadlineMs ?? beat.intervalMs * 1.5;
    this.now = beat.now ?? Date.now;
  }

  /** Listens (a failure is the caller's), then beats. */
  async start(): Promise<void> {
    await this.listen();
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    this.timer.unref?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.sql?.close({ timeout: 2 });
  }

  private async listen(): Promise<void> {
    const generation = ++this.generation;
    const previous = this.sql;
    // A silent connection is closed at once: nothing it might still deliver counts.
    previous?.close({ timeout: 0 }).catch(() => {});
    this.connecting = true;
    this.lastPing = this.now(); // a new connection gets a whole deadline to deliver its first ping
    const sql = this.open(() => {
      if (generation === this.generation) this.down();
    });
    this.sql = sql;
    try {
      await bounded(
        sql.listen(
          CHANGES_CHANNEL,
          (payload) => {
            if (generation === this.generation) this.received(payload);
          },
          () => {
            if (generation === this.generation) this.ping();
          },
        ),
        QUERY_TIMEOUT_MS,
        () => noAnswer(QUERY_TIMEOUT_MS),
      );
    } catch (e) {
      if (generation === this.generation) sql.close({ timeout: 0 }).catch(() => {});
      throw e;
    } finally {
      this.connecting = false;
    }
  }

  private received(payload: string): void {
    if (!payload.startsWith(PING)) {
      this.feed.notify(payload);
      return;
    }
    // Other instances' pings share the channel: only ours tell that this connection delivers.
    if (!payload.startsWith(`${PING}${this.id} `)) return;
    this.lastPing = this.now();
    if (!this.feed.live) this.feed.set(true);
  }

  private down(): void {
    if (this.feed.live) this.feed.set(false);
  }

  private ping(): void {
    // One at a time: a ping held by a silent network must not take the pool's connections one by one.
    if (this.pinging || this.closed) return;
    this.pinging = true;
    this.send(`${PING}${this.id} ${++this.seq}`)
      .catch(() => {})
      .finally(() => {
        this.pinging = false;
      });
  }

  private beat(): void {
    if (this.closed) return;
    if (this.now() - this.lastPing >= this.deadlineMs && !this.connecting) {
      this.down();
      this.listen().catch(() => {}); // tried again at the next beat
    }
    this.ping();
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
  /** The refresh lock `withRefreshLock` holds in this async context: its keyid and the backend holding it. */
  private readonly held = new AsyncLocalStorage<{ keyid: string; pid: number }>();

  private constructor(
    private readonly sql: SQL,
    private readonly locks: SQL,
    private readonly listening: Listening | null,
    feed: Feed,
    readonly where: string,
    private readonly queryTimeoutMs: number,
    private readonly refreshWorkMs: number,
  ) {
    this.changes = feed;
  }

  /**
   * Connects, migrates (once, under an advisory lock, however many instances start
   * together) and, with `watch`, subscribes to the change feed. The bounds and the
   * heartbeat default to the constants above; tests shorten them.
   */
  static async open(
    url: string,
    opts: {
      password?: string;
      watch?: boolean;
      migrations?: readonly string[];
      heartbeat?: Heartbeat;
      queryTimeoutMs?: number;
      refreshWorkMs?: number;
    } = {},
  ): Promise<PostgresStore> {
    const where = redactDatabaseUrl(url);
    const options = { password: opts.password || undefined, connectionTimeout: 5, idleTimeout: 60 };
    // No statement may hold a request for longer than Duplicati waits for one (25 s):
    // a statement gives up after 10 s, a lock wait too (refresh locks set their own, 22 s),
    // and a transaction left idle (an instance stuck mid-refresh) is ended after 60 s.
    // The client gives up too (QUERY_TIMEOUT_MS), for when the server cannot tell it.
    const limits = { application_name: 'broker', statement_timeout: 10_000, lock_timeout: 10_000, idle_in_transaction_session_timeout: 60_000 };
    const sql = new SQL(url, { ...options, max: POOL, connection: limits });
    const locks = new SQL(url, {
      ...options,
      max: LOCK_POOL,
      connection: { ...limits, statement_timeout: 0, idle_in_transaction_session_timeout: LOCK_IDLE_MS },
    });
    const feed = new Feed();
    let listening: Listening | null = null;
    try {
      await migrate(sql, opts.migrations ?? PG_MIGRATIONS, where);
      if (opts.watch) {
        listening = new Listening(
          (onclose) => new SQL(url, { ...options, max: 1, idleTimeout: 0, connection: { application_name: 'broker-listen' }, onclose }),
          feed,
          // Not bounded: one ping at a time, and one held by the network keeps the feed down until it is answered.
          (payload) => sql`SELECT pg_notify(${CHANGES_CHANNEL}, ${payload})`,
          opts.heartbeat ?? { intervalMs: HEARTBEAT_MS },
        );
        await listening.start();
      }
    } catch (e) {
      await Promise.allSettled([sql.close(), locks.close(), listening?.close()]);
      throw storeError(e, `Cannot open the store in ${where}`);
    }
    return new PostgresStore(sql, locks, listening, feed, where, opts.queryTimeoutMs ?? QUERY_TIMEOUT_MS, opts.refreshWorkMs ?? REFRESH_WORK_MS);
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
    return this.lockedUpdate(keyid, expectedVersion, 'sealed = $4, version = version + 1, last_refresh_at = $5', [sealed, now]);
  }

  async setState(keyid: string, expectedVersion: number, state: ConnectionState, reason: string | null, now: number): Promise<boolean> {
    return this.lockedUpdate(keyid, expectedVersion, 'state = $4, state_changed_at = $5, state_reason = $6, version = version + 1', [state, now, reason]);
  }

  /**
   * `UPDATE connections SET <set>` of an active row still at `expectedVersion`.
   * Inside `withRefreshLock` of that connection, it is made only while the lock
   * is still held, checked in the same statement (see LOCKED_UPDATE).
   */
  private async lockedUpdate(keyid: string, expectedVersion: number, set: string, values: unknown[]): Promise<boolean> {
    const lock = this.held.getStore();
    const pid = lock?.keyid === keyid ? lock.pid : null;
    const [r] = await this.q(() => this.sql.unsafe<Guarded[]>(LOCKED_UPDATE(set), [keyid, expectedVersion, pid, ...values]));
    if (!r?.held) {
      throw new BrokerError('store_error', "This connection's refresh lock in the database was lost (its session ended) before the change was saved.", {
        hint: "Check that nothing ends the broker's database sessions (idle_in_transaction_session_timeout, poolers, firewalls); try again.",
      });
    }
    return r.n === 1;
  }

  async revoke(keyid: string, now: number): Promise<boolean> {
    // Waiting for our own copy of the change (when this process listens) starts before the write, so it cannot be missed.
    const seen = this.changes.live ? this.changes.seen(keyid, REVOKE_SETTLE.echoMs) : null;
    const r = await this.q(
      () => this.sql`UPDATE connections SET state = 'revoked', sealed = NULL, version = version + 1, state_changed_at = ${now}, state_reason = 'revoked'
        WHERE keyid = ${keyid} AND state != 'revoked'`,
    );
    if (r.count !== 1) return false;
    // The other instances learn of the revoke by the notification the commit sent them. The revoke is
    // answered only once that notification has come back to us (it went to every listener at the same
    // moment) and a little after, for their event loops to take it in: so the revoker's next request,
    // wherever it lands, is refused. Without a feed of our own (the CLI) a fixed pause stands in for the echo.
    if (seen) await seen;
    await new Promise((ok) => setTimeout(ok, seen ? REVOKE_SETTLE.afterEchoMs : REVOKE_SETTLE.withoutFeedMs));
    return true;
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
   *
   * The caller gets its answer within `refreshWorkMs` of taking the lock (else a
   * store_error), but the lock is held until `fn` has ended, however long: it may
   * be talking to the provider with the refresh token. The lock's session may sit
   * idle in its transaction for LOCK_IDLE_MS, well above; past that the server ends
   * it, and the writes `fn` makes then fail instead of being made without the lock.
   */
  async withRefreshLock<T>(keyid: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
    let phase: 'waiting' | 'running' | 'abandoned' = 'waiting';
    // Read through a function: the transaction's callback runs later, after the timer may have changed it.
    const abandoned = () => phase === 'abandoned';
    let answer!: { resolve: (v: T) => void; reject: (e: unknown) => void };
    const answered = new Promise<T>((resolve, reject) => {
      answer = { resolve, reject };
    });
    const timedOut = () => new BrokerError('conflict', 'Another refresh of this connection has not finished in time.', { hint: 'Try again.' });
    // The lock wait is bounded by lock_timeout; this bounds the wait for a connection of
    // the lock pool too (every one busy with other refreshes). A transaction that gets
    // its connection after the caller gave up does nothing.
    let timer = setTimeout(() => {
      if (phase !== 'waiting') return;
      phase = 'abandoned';
      answer.reject(timedOut());
    }, waitMs + 1000);
    const locked = this.locks.begin(async (tx) => {
      if (abandoned()) return;
      await tx.unsafe(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(waitMs))}`);
      const [row] = await tx`SELECT pg_backend_pid() AS pid, pg_advisory_xact_lock(${LOCK_CLASS}, hashtext(${keyid}))::text AS locked`;
      if (abandoned()) return;
      phase = 'running';
      clearTimeout(timer);
      timer = setTimeout(
        () =>
          answer.reject(
            new BrokerError('store_error', `The refresh of this connection did not finish within ${this.refreshWorkMs / 1000} s.`, {
              hint: 'It goes on and saves its result if it succeeds; check that PostgreSQL answers quickly, then try again.',
            }),
          ),
        this.refreshWorkMs,
      );
      // Writes made by `fn` know the lock they run under (see LOCKED_UPDATE); a throw is a rejection.
      const work = new Promise<T>((resolve) => resolve(this.held.run({ keyid, pid: Number(row.pid) }, fn)));
      work.then(answer.resolve, answer.reject);
      // The lock is held until the work has ended, even past the caller's bound.
      await work.catch(() => {});
    });
    locked.catch((e: unknown) => {
      // Once the work runs, its outcome is the answer; ending the transaction only releases the lock.
      if (phase !== 'waiting') return;
      phase = 'abandoned';
      if (e instanceof BrokerError) answer.reject(e);
      else if ((e as { errno?: string }).errno === '55P03' || /lock timeout/i.test(String((e as Error).message))) answer.reject(timedOut());
      else answer.reject(storeError(e));
    });
    try {
      return await answered;
    } finally {
      clearTimeout(timer);
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
    await Promise.allSettled([this.sql.close({ timeout: 2 }), this.locks.close({ timeout: 2 }), this.listening?.close()]);
  }

  /** A query (or a few), bounded by the client-side deadline; any failure is a store_error. */
  private async q<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await bounded(fn(), this.queryTimeoutMs, () => noAnswer(this.queryTimeoutMs));
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
