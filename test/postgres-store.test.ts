/**
 * The PostgreSQL store in process (issue 11). Point 5: two token services on one
 * database learn of revocations and rotations by LISTEN/NOTIFY, so that a cache hit
 * needs no round trip; while the listening connection is down, every request reads
 * the row. Also: TLS to the server (sslmode), and the refresh lock's bounds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from '../src/broker/broker.ts';
import { silentLogger } from '../src/broker/context.ts';
import type { SealedGrant } from '../src/broker/sealed-grant.ts';
import { generateAuthId } from '../src/crypto/authid.ts';
import { deriveKeys, sealJson } from '../src/crypto/seal.ts';
import { loadSodium } from '../src/crypto/sodium.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { type Cluster, postgresMissing, startCluster } from './support/postgres.ts';
import { unavailable } from './support/requires.ts';

const noPostgres = unavailable('postgres-store.test.ts', 'the change-feed tests', postgresMissing());

/** A store that counts its row reads. */
function counting(store: PostgresStore): { store: PostgresStore; reads: () => number } {
  let n = 0;
  const getHead = store.getHead.bind(store);
  const get = store.get.bind(store);
  store.getHead = (k) => {
    n++;
    return getHead(k);
  };
  store.get = (k) => {
    n++;
    return get(k);
  };
  return { store, reads: () => n };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(noPostgres)('the change feed (LISTEN/NOTIFY)', () => {
  let cluster: Cluster;
  let url: string;
  const opened: PostgresStore[] = [];
  beforeAll(async () => {
    cluster = await startCluster();
    url = await cluster.createDatabase();
  }, 60_000);
  afterAll(async () => {
    for (const s of opened) await s.close();
    await cluster?.destroy();
  });

  async function instance() {
    const store = await PostgresStore.open(url, { watch: true });
    opened.push(store);
    const c = counting(store);
    const sodium = await loadSodium();
    const broker = new Broker({
      config: {
        clientId: 'c',
        clientSecret: 's',
        tenant: 'consumers',
        authority: 'http://127.0.0.1:9',
        publicUrl: 'http://broker.test',
        passcodeHash: '',
        allowedOrigins: [],
      },
      store,
      sodium,
      fetch: () => Promise.reject(new Error('no network in this test')),
      now: Date.now,
      log: silentLogger,
    });
    return { broker, store, reads: c.reads };
  }

  it('cache hits read nothing while the feed is up; a rotation elsewhere arrives by NOTIFY; with the listener killed every request reads the row and sees a revoke at once', async () => {
    const a = await instance();
    const b = await instance();
    const sodium = await loadSodium();
    const { authid, parsed } = generateAuthId((n) => sodium.randombytes_buf(n));
    const keys = deriveKeys(sodium, parsed);
    const grant: SealedGrant = {
      v: 1,
      service: 'onedrivev2',
      refreshToken: 'rt',
      accessToken: 'at-1',
      accessTokenExpiresAt: Date.now() + 3600_000,
      accessTokenLifetime: 3600,
      account: { tid: 't', oid: 'o' },
      obtainedAt: Date.now(),
    };
    await a.store.insert({
      keyid: parsed.keyid,
      service: 'onedrivev2',
      checkTag: keys.checkTag,
      sealed: sealJson(sodium, keys.sealKey, grant),
      now: Date.now(),
    });
    await until('both feeds live', () => a.store.changes.live && b.store.changes.live);

    // First request reads the row (and the envelope); the next ones are served from memory.
    expect((await b.broker.tokens.getAccessToken(authid)).accessToken).toBe('at-1');
    const before = b.reads();
    for (let i = 0; i < 50; i++) expect((await b.broker.tokens.getAccessToken(authid)).source).toBe('cache');
    expect(b.reads() - before).toBe(0);

    // A rotation written by another instance (version bump) reaches B by NOTIFY: B reads again, once.
    const row = (await a.store.get(parsed.keyid))!;
    await a.store.compareAndSwap(parsed.keyid, row.version, sealJson(sodium, keys.sealKey, { ...grant, accessToken: 'at-2' }), Date.now());
    await until('B sees the rotation', async () => (await b.broker.tokens.getAccessToken(authid)).accessToken === 'at-2');
    const settled = b.reads();
    for (let i = 0; i < 20; i++) await b.broker.tokens.getAccessToken(authid);
    expect(b.reads() - settled).toBe(0);

    // Kill B's listening connection, and keep it from coming back (no new connections to
    // the database; the pools keep theirs): every request now reads the row, so a revoke
    // made meanwhile is seen at once.
    const { SQL } = await import('bun');
    const admin = new SQL(cluster.url, { max: 1 });
    const db = new URL(url).pathname.slice(1);
    try {
      await admin.unsafe(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS false`);
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${db} AND query LIKE 'LISTEN%'`;
      await until('the feeds go down', () => !b.store.changes.live);
      const down = b.reads();
      for (let i = 0; i < 10; i++) expect((await b.broker.tokens.getAccessToken(authid)).accessToken).toBe('at-2');
      expect(b.reads() - down).toBe(10);
      await a.broker.revokeWithAuthId(authid, '192.0.2.1');
      await expect(b.broker.tokens.getAccessToken(authid)).rejects.toMatchObject({ code: 'revoked' });
      await admin.unsafe(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS true`);
    } finally {
      await admin.unsafe(`ALTER DATABASE ${db} WITH ALLOW_CONNECTIONS true`).catch(() => {});
      await admin.close();
    }
    // It comes back by itself.
    await until('the feed is back', () => b.store.changes.live, 20_000);
    await expect(b.broker.tokens.getAccessToken(authid)).rejects.toMatchObject({ code: 'revoked' });
  });
});

describe.skipIf(noPostgres)('TLS to the server (sslmode)', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster({ tls: true });
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('sslmode=require talks TLS; sslmode=disable does not; the URL shown keeps no password', async () => {
    const url = await cluster.createDatabase();
    const withPassword = url.replace('postgres@', 'postgres:never-shown@');
    for (const [mode, ssl] of [
      ['require', true],
      ['disable', false],
    ] as const) {
      const store = await PostgresStore.open(`${withPassword}?sslmode=${mode}`);
      try {
        expect(store.where).not.toContain('never-shown');
        const { SQL } = await import('bun');
        const probe = new SQL(`${url}?sslmode=${mode}`, { max: 1 });
        try {
          const [row] = await probe`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
          expect(row.ssl).toBe(ssl);
        } finally {
          await probe.close();
        }
        expect(await store.countByState()).toEqual([]);
      } finally {
        await store.close();
      }
    }
  });
});

describe.skipIf(noPostgres)('the refresh lock across instances', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a notification is claimed once across instances (notify)', async () => {
    const url = await cluster.createDatabase();
    const [a, b] = await Promise.all([PostgresStore.open(url), PostgresStore.open(url)]);
    try {
      const claims = await Promise.all([a, b, a, b].map((s) => s.claimNotification('cause-1', Date.now())));
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await b.claimNotification('cause-2', Date.now())).toBe(true);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('one holder at a time per connection; a waiter runs after it; a wait past its bound is a conflict; other connections do not wait', async () => {
    const url = await cluster.createDatabase();
    const [a, b] = await Promise.all([PostgresStore.open(url), PostgresStore.open(url)]);
    try {
      const events: string[] = [];
      const hold = (name: string, ms: number) => async () => {
        events.push(`${name} start`);
        await new Promise((r) => setTimeout(r, ms));
        events.push(`${name} end`);
        return name;
      };
      const first = a.withRefreshLock('bk1same', 5000, hold('a', 600));
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      const late = b.withRefreshLock('bk1same', 200, hold('late', 0)).catch((e: { code?: string }) => e.code);
      const other = b.withRefreshLock('bk1other', 200, hold('other', 0));
      const second = b.withRefreshLock('bk1same', 5000, hold('b', 0));
      expect(await other).toBe('other');
      expect(await late).toBe('conflict');
      expect(Date.now() - t0).toBeLessThan(1500);
      expect(await first).toBe('a');
      expect(await second).toBe('b');
      expect(events.filter((e) => !e.startsWith('other'))).toEqual(['a start', 'a end', 'b start', 'b end']);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
