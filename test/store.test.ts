import { Database } from 'bun:sqlite';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../src/cli/store-file.ts';
import { SqliteStore } from '../src/store/store.ts';
import { MIGRATIONS } from '../src/store/migrations.ts';

const dirs: SqliteStore[] = [];
function fresh(): { store: SqliteStore; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'broker-store-'));
  const path = join(dir, 'broker.db');
  const store = SqliteStore.open(path);
  dirs.push(store);
  return { store, path };
}
afterEach(async () => {
  for (const s of dirs.splice(0)) {
    try {
      await s.close();
    } catch {}
  }
});

const tag = new Uint8Array(32).fill(7);
const box = (n: number) => new Uint8Array(64).fill(n);

describe('store', () => {
  it('migrates a new file to the current schema, in WAL mode, private to its owner', async () => {
    const { store, path } = fresh();
    await store.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    const db = new Database(path, { readonly: true });
    expect((db.query('PRAGMA user_version').get() as { user_version: number }).user_version).toBe(MIGRATIONS.length);
    expect((db.query('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode).toBe('wal');
    db.close();
    for (const f of [path, `${path}-wal`, `${path}-shm`]) expect(statSync(f).mode & 0o777).toBe(0o600);
  });

  it('a committed write survives a power cut: WAL with synchronous=FULL on every opened store (also the one serve and the CLI open)', async () => {
    const { store } = fresh();
    // 2 = FULL: each commit is fsynced. NORMAL (1) in WAL mode may lose the last commits
    // on power loss, i.e. a rotated refresh token Microsoft already considers the current one.
    expect(store.durability()).toEqual({ journalMode: 'wal', synchronous: 2 });
    const home = join(mkdtempSync(join(tmpdir(), 'broker-store-home-')), 'home');
    const viaHome = (await openStore(home)) as SqliteStore;
    dirs.push(viaHome);
    expect(viaHome.durability()).toEqual({ journalMode: 'wal', synchronous: 2 });
  });

  it('re-opens an existing store without re-running migrations', async () => {
    const { store, path } = fresh();
    await store.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    await store.close();
    const again = SqliteStore.open(path);
    dirs.push(again);
    expect((await again.get('bk1a'))?.service).toBe('onedrivev2');
  });

  it('refuses a store from a newer broker instead of damaging it', async () => {
    const { store, path } = fresh();
    await store.close();
    const db = new Database(path);
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => SqliteStore.open(path)).toThrow(/newer than this broker/);
  });

  it('compare-and-swap: only the writer holding the current version wins', async () => {
    const { store } = fresh();
    await store.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    const v = (await store.get('bk1a'))!.version;
    expect(await store.compareAndSwap('bk1a', v, box(2), 2000)).toBe(true);
    // A second writer that read the same version loses and changes nothing.
    expect(await store.compareAndSwap('bk1a', v, box(3), 3000)).toBe(false);
    const r = (await store.get('bk1a'))!;
    expect(r.version).toBe(v + 1);
    expect(r.sealed).toEqual(box(2));
    expect(r.lastRefreshAt).toBe(2000);
  });

  it('revoke wipes the envelope, keeps the check tag, and blocks later swaps', async () => {
    const { store } = fresh();
    await store.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    const v = (await store.get('bk1a'))!.version;
    expect(await store.revoke('bk1a', 5000)).toBe(true);
    expect(await store.revoke('bk1a', 6000)).toBe(false);
    const r = (await store.get('bk1a'))!;
    expect(r.state).toBe('revoked');
    expect(r.sealed).toBeNull();
    expect(r.checkTag).toEqual(tag);
    expect(await store.compareAndSwap('bk1a', v + 1, box(9), 7000)).toBe(false);
    expect((await store.get('bk1a'))!.sealed).toBeNull();
  });

  it('a second process sees a revoke at once (WAL, two connections)', async () => {
    const { store, path } = fresh();
    await store.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    const other = SqliteStore.open(path);
    dirs.push(other);
    expect(await other.revoke('bk1a', 2000)).toBe(true);
    expect((await store.get('bk1a'))!.state).toBe('revoked');
  });

  it('insertMany writes all rows in one transaction, or none', async () => {
    const { store } = fresh();
    await store.insertMany([1, 2, 3].map((i) => ({ keyid: `bk1m${i}`, service: 'onedrivev2', checkTag: tag, sealed: box(i), now: i })));
    expect((await store.list()).map((r) => r.keyid)).toEqual(['bk1m1', 'bk1m2', 'bk1m3']);
    // A duplicate keyid in the batch: nothing of that batch lands.
    await expect(
      store.insertMany([
        { keyid: 'bk1m4', service: 'onedrivev2', checkTag: tag, sealed: box(4), now: 4 },
        { keyid: 'bk1m1', service: 'onedrivev2', checkTag: tag, sealed: box(5), now: 5 },
      ]),
    ).rejects.toThrow(/could not be written/);
    expect(await store.get('bk1m4')).toBeNull();
  });

  it('lists connections without secrets', async () => {
    const { store } = fresh();
    await store.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    const [row] = await store.list();
    expect(row).toMatchObject({ keyid: 'bk1a', service: 'onedrivev2', state: 'active', createdAt: 1000 });
    expect(Object.keys(row!)).not.toContain('sealed');
    expect(Object.keys(row!)).not.toContain('checkTag');
  });
});

describe('change feed (what a cache hit asks before using a remembered row)', () => {
  /** Counts the feed's resets: each one makes the token service read every row again. */
  function resets(store: SqliteStore): { count: number } {
    const seen = { count: 0 };
    store.changes.subscribe(
      () => {},
      () => {},
      () => seen.count++,
    );
    return seen;
  }

  it('a commit by another connection (another process: broker revoke) is seen at the next sync, and only once', async () => {
    const { store, path } = fresh();
    await store.insert({ keyid: 'bk1a', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    const seen = resets(store);
    store.changes.sync();
    store.changes.sync();
    expect(seen.count).toBe(0);
    for (let i = 1; i <= 3; i++) {
      const other = SqliteStore.open(path);
      await other.touch('bk1a', 2000 + i);
      await other.close();
      store.changes.sync();
      expect(seen.count).toBe(i);
      store.changes.sync();
      expect(seen.count).toBe(i);
    }
  });

  it("this connection's own write is one reset, reported by the store itself, not a second one at the next sync", async () => {
    const { store } = fresh();
    const seen = resets(store);
    store.changes.sync();
    await store.insert({ keyid: 'bk1b', service: 'onedrivev2', checkTag: tag, sealed: box(1), now: 1000 });
    expect(seen.count).toBe(1);
    store.changes.sync();
    store.changes.sync();
    expect(seen.count).toBe(1);
  });
});
