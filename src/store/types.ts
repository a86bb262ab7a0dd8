/**
 * The store as the broker sees it: one interface, two implementations chosen at
 * start-up (sqlite.ts, the default, in BROKER_HOME; postgres.ts, shared by several
 * instances). Every method returns a promise, so either fits.
 *
 * Besides connections it keeps short-lived shared state: pending logins and
 * Duplicati fetch tokens ("transients", single-use by `take`), and the failure
 * counters of the rate limits. Secrets never go in as they are: callers seal
 * them under a key the database does not hold (see broker/login.ts, fetch-tokens.ts).
 */
export type ConnectionState = 'active' | 'login_required' | 'revoked';

/** What anyone may see about a connection: nothing here is secret. */
export interface ConnectionInfo {
  keyid: string;
  service: string;
  state: ConnectionState;
  version: number;
  createdAt: number;
  lastRefreshAt: number | null;
  lastUsedAt: number | null;
  stateChangedAt: number | null;
  stateReason: string | null;
}

export interface ConnectionHead extends ConnectionInfo {
  checkTag: Uint8Array;
}

export interface ConnectionRecord extends ConnectionHead {
  sealed: Uint8Array | null;
}

export interface NewConnection {
  keyid: string;
  service: string;
  checkTag: Uint8Array;
  sealed: Uint8Array;
  now: number;
}

/** A failure counter in a fixed window. */
export interface Window {
  count: number;
  resetAt: number;
}

/**
 * Changes to connections made by anyone (another instance, `broker revoke`),
 * pushed as they commit. While `live` is false the listener is down, or has not
 * shown lately that it still delivers (PostgreSQL: its heartbeat), and a reader
 * must not trust what it remembers.
 */
export interface ChangeFeed {
  readonly live: boolean;
  /**
   * `changed` gets the keyid and its new version; `status` each time the feed goes
   * up or down; `reset` that something changed, the feed cannot say which row
   * (forget every remembered row). A feed that needs `reset` and is not given one
   * reports through `status(true)` instead.
   */
  subscribe(changed: (keyid: string, version: number) => void, status: (live: boolean) => void, reset?: () => void): void;
  /**
   * A feed that is asked rather than told (SQLite): looks for commits since the
   * last call and reports them before it returns. A reader calls it before it
   * trusts anything it remembers.
   */
  sync?(): void;
}

export interface Store {
  /** 'sqlite' or 'postgres': for logs, doctor and status. */
  readonly kind: 'sqlite' | 'postgres';
  /** Where it is, without any password: for messages. */
  readonly where: string;
  /** Changes to connections by anyone; absent = read the row on every request. */
  readonly changes?: ChangeFeed;

  get(keyid: string): Promise<ConnectionRecord | null>;
  /** The row without its envelope: what every request needs to authenticate. */
  getHead(keyid: string): Promise<ConnectionHead | null>;
  insert(c: NewConnection): Promise<void>;
  /** Many rows in one transaction: for imports and for seeding benchmarks. */
  insertMany(rows: readonly NewConnection[]): Promise<void>;
  /** Every row as it is (envelopes included), in keyid order: for `store migrate`. */
  exportAll(): AsyncIterable<ConnectionRecord[]>;
  /** Rows exactly as given (versions, dates, states): for `store migrate` into an empty store. */
  importRows(rows: readonly ConnectionRecord[]): Promise<void>;
  /** Replaces the envelope only if nobody else changed the row since `expectedVersion`. */
  compareAndSwap(keyid: string, expectedVersion: number, sealed: Uint8Array, now: number): Promise<boolean>;
  setState(keyid: string, expectedVersion: number, state: ConnectionState, reason: string | null, now: number): Promise<boolean>;
  /** Wipes the envelope for good. Returns false if there was nothing active to revoke. */
  revoke(keyid: string, now: number): Promise<boolean>;
  touch(keyid: string, now: number): Promise<void>;
  countByState(): Promise<{ state: ConnectionState; count: number }[]>;
  list(): Promise<ConnectionInfo[]>;

  /**
   * Runs `fn` while holding the refresh lock of one connection across every
   * instance sharing this store, so that one upstream call serves them all. Waits
   * at most `waitMs` for the lock (then `conflict`).
   */
  withRefreshLock<T>(keyid: string, waitMs: number, fn: () => Promise<T>): Promise<T>;

  /** Adds `value` under (kind, key) unless a live entry is there. */
  putTransient(kind: string, key: string, value: Uint8Array, expiresAt: number, now: number): Promise<boolean>;
  getTransient(kind: string, key: string, now: number): Promise<{ value: Uint8Array; expiresAt: number } | null>;
  /** Removes the entry and returns it, once: whoever takes it first, on whichever instance. */
  takeTransient(kind: string, key: string, now: number): Promise<{ value: Uint8Array; expiresAt: number } | null>;
  /** Replaces a live entry's value only if it is still `expected`. */
  replaceTransient(kind: string, key: string, expected: Uint8Array, value: Uint8Array, expiresAt: number, now: number): Promise<boolean>;
  /** Live entries of a kind, and when the soonest of them ends. */
  countTransient(kind: string, now: number): Promise<{ count: number; soonest: number | null }>;

  /** Counts one failure of `key`; a new window starts when the last one ended. */
  fail(kind: string, key: string, windowMs: number, now: number): Promise<Window>;
  /** The key's current window, or null. */
  failures(kind: string, key: string, now: number): Promise<Window | null>;
  /** Takes back one counted failure. */
  forgive(kind: string, key: string, now: number): Promise<void>;

  /**
   * Claims the right to send the notification for `key` (a cause, see src/notify):
   * true for the first caller ever, in any process or instance on this store; false after.
   */
  claimNotification(key: string, now: number): Promise<boolean>;

  close(): Promise<void>;
}
