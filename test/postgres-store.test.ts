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
import { deriveKeys, openJson, sealJson } from '../src/crypto/seal.ts';
import { loadSodium } from '../src/crypto/sodium.ts';
import { PostgresStore } from '../src/store/postgres.ts';
import { type Cluster, postgresMissing, startCluster } from './support/postgres.ts';
import { startTcpProxy, throughProxy } from './support/tcp-proxy.ts';
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

  async function instance(opts: { url?: string; heartbeat?: { intervalMs: number } } = {}) {
    const store = await PostgresStore.open(opts.url ?? url, { watch: true, heartbeat: opts.heartbeat });
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

  /** A connection in the store whose access token is good for an hour. */
  async function seed(store: PostgresStore): Promise<{ authid: string }> {
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
    await store.insert({ keyid: parsed.keyid, service: 'onedrivev2', checkTag: keys.checkTag, sealed: sealJson(sodium, keys.sealKey, grant), now: Date.now() });
    return { authid };
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

  it('a listening connection gone silent (blackholed, not closed): within the heartbeat deadline every request reads the row again and refuses a revoke made elsewhere; a new listening connection takes over', async () => {
    const u = new URL(url);
    const proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port) });
    try {
      const a = await instance();
      // B reaches the database through the proxy, and checks its listening connection every 200 ms.
      const b = await instance({ url: throughProxy(url, proxy), heartbeat: { intervalMs: 200 } });
      const statuses: boolean[] = [];
      b.store.changes.subscribe(
        () => {},
        (live) => statuses.push(live),
      );
      const { authid } = await seed(a.store);
      await until('both feeds live', () => a.store.changes.live && b.store.changes.live);
      expect((await b.broker.tokens.getAccessToken(authid)).accessToken).toBe('at-1');
      const before = b.reads();
      for (let i = 0; i < 20; i++) expect((await b.broker.tokens.getAccessToken(authid)).source).toBe('cache');
      expect(b.reads() - before).toBe(0);

      // The network drops B's listening connection without telling either end: no close, no error.
      expect(proxy.blackhole({ which: (startup) => startup.includes('broker-listen') })).toBe(1);
      await a.broker.revokeWithAuthId(authid, '192.0.2.1');
      const t0 = Date.now();
      const code = () =>
        b.broker.tokens.getAccessToken(authid).then(
          () => 'served',
          (e: { code?: string }) => e.code,
        );
      await until('B refuses the revoked AuthID', async () => (await code()) === 'revoked');
      // The deadline is 1.5 beats, checked at every beat: 400 ms at most, then B reads the row.
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(statuses).toContain(false);
      // A new listening connection replaced the silent one (closed); its pings bring the feed back up.
      await until('the feed is back', () => b.store.changes.live);
      expect(statuses.at(-1)).toBe(true);
      await until('the silent connection is closed', () => proxy.open().filter((s) => s.includes('broker-listen')).length === 1);
      expect(await code()).toBe('revoked');
    } finally {
      await proxy.close();
    }
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

  it('the work under the lock is bounded: its caller gets store_error at the bound, the lock stays held until the work ends', async () => {
    const url = await cluster.createDatabase();
    const [a, b] = await Promise.all([PostgresStore.open(url, { refreshWorkMs: 300 }), PostgresStore.open(url)]);
    try {
      let finish: (v: string) => void = () => {};
      const stuck = new Promise<string>((r) => {
        finish = r;
      });
      const t0 = Date.now();
      await expect(a.withRefreshLock('bk1stuck', 5000, () => stuck)).rejects.toMatchObject({ code: 'store_error', message: /did not finish within/ });
      expect(Date.now() - t0).toBeLessThan(1500);
      // The work goes on (it may be talking to the provider with the refresh token): nobody else may start one.
      await expect(b.withRefreshLock('bk1stuck', 200, async () => 'b')).rejects.toMatchObject({ code: 'conflict' });
      finish('a');
      expect(await b.withRefreshLock('bk1stuck', 5000, async () => 'b')).toBe('b');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('the lock lost while the provider answers (its session ended): the refresh fails with store_error, writes nothing without the lock, and the next request writes the kept rotation first', async () => {
    const url = await cluster.createDatabase();
    const store = await PostgresStore.open(url);
    const { SQL } = await import('bun');
    const admin = new SQL(url, { max: 1 });
    const sodium = await loadSodium();
    try {
      const { authid, parsed } = generateAuthId((n) => sodium.randombytes_buf(n));
      const keys = deriveKeys(sodium, parsed);
      const grant: SealedGrant = {
        v: 1,
        service: 'onedrivev2',
        refreshToken: 'rt-1',
        accessToken: 'at-1',
        accessTokenExpiresAt: Date.now() + 10_000, // too short to hand out: a refresh
        accessTokenLifetime: 3600,
        account: { tid: 't', oid: 'o' },
        obtainedAt: Date.now(),
      };
      await store.insert({
        keyid: parsed.keyid,
        service: 'onedrivev2',
        checkTag: keys.checkTag,
        sealed: sealJson(sodium, keys.sealKey, grant),
        now: Date.now(),
      });
      let calls = 0;
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
        fetch: async () => {
          calls++;
          if (calls === 1) {
            // While the provider answers, the lock's session ends (here: killed).
            const held = `FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
            await admin.unsafe(`SELECT pg_terminate_backend(pid) ${held}`);
            await until('the lock is gone', async () => Number((await admin.unsafe(`SELECT count(*) AS n ${held}`))[0].n) === 0);
          }
          const body = { access_token: `at-${calls + 1}`, refresh_token: `rt-${calls + 1}`, expires_in: 3600, token_type: 'Bearer' };
          return new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } });
        },
        now: Date.now,
        log: silentLogger,
      });
      await expect(broker.tokens.getAccessToken(authid)).rejects.toMatchObject({ code: 'store_error', message: /refresh lock .* was lost/ });
      expect((await store.get(parsed.keyid))!.version).toBe(1);
      expect(broker.tokens.unsavedCount()).toBe(1);
      // The next request, under a lock of its own, writes the rotation it kept; no new call to the provider.
      expect((await broker.tokens.getAccessToken(authid)).accessToken).toBe('at-2');
      expect(calls).toBe(1);
      const row = (await store.get(parsed.keyid))!;
      expect(row.version).toBe(2);
      expect(openJson<SealedGrant>(sodium, keys.sealKey, row.sealed!).refreshToken).toBe('rt-2');
    } finally {
      await admin.close();
      await store.close();
    }
  });

  it('a compare-and-swap or state change under a lock that was lost (its session ended) fails with store_error and writes nothing; under the held lock it writes', async () => {
    const url = await cluster.createDatabase();
    const store = await PostgresStore.open(url);
    const { SQL } = await import('bun');
    const admin = new SQL(url, { max: 1 });
    const keyid = 'bk1lost';
    // The advisory locks held in this test's database (pg_locks shows the whole cluster's).
    const held = `FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
    const advisory = async () => Number((await admin.unsafe(`SELECT count(*) AS n ${held}`))[0].n);
    const loseTheLock = async () => {
      await admin.unsafe(`SELECT pg_terminate_backend(pid) ${held}`);
      await until('the lock is gone', async () => (await advisory()) === 0);
    };
    try {
      await store.insert({ keyid, service: 'onedrivev2', checkTag: new Uint8Array(32), sealed: new Uint8Array([1]), now: 1 });
      expect(await store.withRefreshLock(keyid, 5000, () => store.compareAndSwap(keyid, 1, new Uint8Array([2]), 2))).toBe(true);
      // Outside a refresh lock (the CLI, imports) nothing changes.
      expect(await store.compareAndSwap(keyid, 2, new Uint8Array([3]), 3)).toBe(true);
      for (const write of [
        () => store.compareAndSwap(keyid, 3, new Uint8Array([4]), 4),
        () => store.setState(keyid, 3, 'login_required', 'sign in again', 4),
      ]) {
        await expect(
          store.withRefreshLock(keyid, 5000, async () => {
            expect(await advisory()).toBe(1);
            await loseTheLock();
            return write();
          }),
        ).rejects.toMatchObject({ code: 'store_error', message: /refresh lock .* was lost/ });
        const row = (await store.get(keyid))!;
        expect([row.version, row.state, [...row.sealed!]]).toEqual([3, 'active', [3]]);
      }
      // The next holder writes as usual.
      expect(await store.withRefreshLock(keyid, 5000, () => store.setState(keyid, 3, 'login_required', 'sign in again', 5))).toBe(true);
    } finally {
      await admin.close();
      await store.close();
    }
  });
});

describe.skipIf(noPostgres)('a network that drops packets (no reset)', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a query gives up at the client-side deadline with store_error (no URL, no password), never hangs; the store recovers when the path heals', async () => {
    const url = await cluster.createDatabase();
    const u = new URL(url);
    const proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port) });
    const store = await PostgresStore.open(throughProxy(url, proxy).replace('postgres@', 'postgres:never-shown@'), { queryTimeoutMs: 500 });
    try {
      expect(await store.countByState()).toEqual([]);
      proxy.blackhole({ newOnes: true });
      for (const call of [() => store.getHead('bk1nothing'), () => store.countByState(), () => store.touch('bk1nothing', 1)]) {
        const t0 = Date.now();
        const e = await call().then(
          () => null,
          (err: Error & { code?: string }) => err,
        );
        expect(e).toMatchObject({ code: 'store_error', message: /did not answer within 0\.5 s/ });
        expect(Date.now() - t0).toBeLessThan(1500);
        expect(e!.message).not.toMatch(/never-shown|127\.0\.0\.1|postgres:/);
      }
      proxy.heal();
      await until('the store answers again', () =>
        store.countByState().then(
          () => true,
          () => false,
        ),
      );
      expect(await store.getHead('bk1nothing')).toBeNull();
    } finally {
      proxy.heal();
      await store.close();
      await proxy.close();
    }
  });
});
