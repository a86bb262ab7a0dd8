/**
 * Several instances on one PostgreSQL (issue 11), through the compiled binary:
 * three `serve` processes, each with its own BROKER_HOME holding the same
 * settings.json, one database, the local Entra with strict reuse detection.
 * Numbers in the describe titles are the points.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateAuthId } from '../src/crypto/authid.ts';
import { PG_MIGRATIONS } from '../src/store/pg-migrations.ts';
import { configuredHome, connectOverHttp, freePort, LOOPBACK_CALLBACK, newHome, run, type Served, serve } from './support/binary.ts';
import { type Entra, startEntra } from './support/entra.ts';
import { PASSCODE } from './support/passcode.ts';
import { type Cluster, postgresMissing, startCluster } from './support/postgres.ts';
import { unavailable } from './support/requires.ts';

const noPostgres = unavailable('instances.test.ts', 'the several-instances tests', postgresMissing());

let cluster: Cluster;
let entra: Entra;

/** A settings.json pointing at `databaseUrl`, copied into `n` homes; the first made by `broker init --database-url`. */
async function homes(databaseUrl: string, n: number): Promise<string[]> {
  const { home } = await configuredHome(entra, PASSCODE, { extraArgs: ['--database-url', databaseUrl] });
  const out = [home];
  for (let i = 1; i < n; i++) {
    const h = newHome();
    mkdirSync(h, { recursive: true, mode: 0o700 });
    cpSync(join(home, 'settings.json'), join(h, 'settings.json'));
    out.push(h);
  }
  return out;
}

async function serveAll(hs: string[], env: Record<string, string> = {}): Promise<Served[]> {
  return Promise.all(hs.map(async (h) => serve(h, env, ['--listen', `127.0.0.1:${await freePort()}`])));
}

const running: Served[] = [];
async function instances(n: number, env: Record<string, string> = {}): Promise<{ url: string; servers: Served[]; homes: string[] }> {
  const url = await cluster.createDatabase();
  const hs = await homes(url, n);
  const servers = await serveAll(hs, env);
  running.push(...servers);
  return { url, servers, homes: hs };
}

function refresh(base: string, authid: string): Promise<Response> {
  return fetch(`${base}/refresh`, { headers: { 'x-authid': authid } });
}

/** Connects through instance `a`, ending the login (the provider's redirect) on instance `b`. */
async function connectAcross(a: Served, b: Served, username = 'several'): Promise<{ authid: string; keyid: string }> {
  return connectOverHttp(
    a.url,
    PASSCODE,
    async (authorizeUrl, opts) => {
      const callback = new URL(await entra.login(authorizeUrl, opts));
      // The load balancer sent the browser's return to the other instance.
      const there = new URL(b.url);
      callback.host = there.host;
      return callback.toString();
    },
    { username },
  );
}

describe.skipIf(noPostgres)('several instances on one PostgreSQL', () => {
  beforeAll(async () => {
    cluster = await startCluster();
    entra = await startEntra({ acceptRedirectUri: LOOPBACK_CALLBACK, reuseGraceMs: 0, accessTokenTtl: 30 });
  }, 60_000);
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
  });
  afterAll(async () => {
    await entra?.close();
    await cluster?.destroy();
  });

  describe('2. a login may end on another instance', () => {
    it('starts at A, comes back from the provider to B, completes; the same state replayed at C is refused', async () => {
      const { servers } = await instances(3);
      const [a, b, c] = servers as [Served, Served, Served];
      let replay = '';
      let cookie = '';
      const { authid } = await connectOverHttp(a.url, PASSCODE, async (authorizeUrl, opts) => {
        const callback = new URL(await entra.login(authorizeUrl, opts));
        callback.host = new URL(b.url).host;
        replay = callback.toString().replace(new URL(b.url).host, new URL(c.url).host);
        return callback.toString();
      });
      expect(authid).toMatch(/:/);
      expect((await refresh(c.url, authid)).status).toBe(200);
      // The state is single-use across instances (the cookie would not help either).
      cookie = '';
      const again = await fetch(replay, { headers: { cookie } });
      expect(again.status).toBe(400);
      expect(again.headers.get('x-reason')).toMatch(/unknown, was already used|another browser/);
    });

    it("Duplicati's legacy fetch token: registered at A, the login ends at B, the AuthID is fetched (once) from C", async () => {
      const { servers } = await instances(3);
      const [a, b, c] = servers as [Served, Served, Served];
      const token = `fetch-${crypto.randomUUID()}`;
      const page = await fetch(`${a.url}/?token=${token}`, { headers: { origin: 'http://localhost:8200' } });
      expect(page.status).toBe(200);
      const fetchCookie = page.headers.get('set-cookie')!.split(';')[0]!;
      expect(await (await fetch(`${c.url}/fetch?token=${token}`)).json()).toEqual({ wait: 'Not ready' });
      const started = await fetch(`${b.url}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: fetchCookie },
        body: new URLSearchParams({ id: 'onedrivev2', passcode: PASSCODE, token }),
      });
      expect(started.status, started.headers.get('x-reason') ?? '').toBe(302);
      const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
      const callback = new URL(await entra.login(started.headers.get('location')!));
      callback.host = new URL(a.url).host;
      const done = await fetch(callback, { headers: { cookie } });
      expect(done.status).toBe(200);
      const got = (await (await fetch(`${c.url}/fetch?token=${token}`)).json()) as { authid?: string };
      expect(got.authid).toMatch(/:/);
      expect(await (await fetch(`${b.url}/fetch?token=${token}`)).json()).toEqual({ error: 'No such entry' });
      expect((await refresh(a.url, got.authid!)).status).toBe(200);
    });
  });

  describe('3. one upstream call per expiry across instances', () => {
    it('300 concurrent refreshes of one expired connection over three instances: all 200, one refresh at the provider, no reuse', async () => {
      const { servers } = await instances(3);
      const { authid } = await connectAcross(servers[0]!, servers[1]!);
      // The token from the login lives 30 s: below what the broker hands out, so it must be refreshed.
      entra.setAccessTokenTtl(3600);
      entra.resetStats();
      try {
        const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => refresh(servers[i % 3]!.url, authid)));
        const bodies = await Promise.all(answers.map((r) => r.json() as Promise<{ access_token?: string }>));
        expect(answers.map((r, i) => (r.status === 200 ? 200 : `${r.status} ${r.headers.get('x-reason')} ${JSON.stringify(bodies[i])}`))).toEqual(
          Array(300).fill(200),
        );
        expect(new Set(bodies.map((b) => b.access_token)).size).toBe(1);
        expect(entra.stats().byGrant.refresh_token).toBe(1);
        expect(entra.stats().reuseDetected).toBe(0);
      } finally {
        entra.setAccessTokenTtl(30);
      }
    });
  });

  describe('4. revocation is instant everywhere', () => {
    it('revoked through A: B and C refuse it on the next request, though they hold a cached token', async () => {
      const { servers } = await instances(3);
      const [a, b, c] = servers as [Served, Served, Served];
      entra.setAccessTokenTtl(3600);
      try {
        const { authid } = await connectAcross(a, b);
        // B and C now hold the token in memory.
        for (const s of [b, c]) expect((await refresh(s.url, authid)).status).toBe(200);
        const revoked = await fetch(`${a.url}/revoke`, { method: 'POST', headers: { 'x-authid': authid } });
        expect(revoked.status).toBe(200);
        for (const s of [b, c]) {
          const r = await refresh(s.url, authid);
          expect(r.status).toBe(410);
          expect(r.headers.get('x-reason')).toMatch(/revoked/);
        }
      } finally {
        entra.setAccessTokenTtl(30);
      }
    });

    it('GET /status, `broker list`, `broker doctor` and `broker revoke <keyid>` against the database; no password shown', async () => {
      const { servers, homes: hs } = await instances(2);
      entra.setAccessTokenTtl(3600);
      try {
        const { authid, keyid } = await connectAcross(servers[0]!, servers[1]!);
        for (const s of servers) expect((await refresh(s.url, authid)).status).toBe(200);
        const status = await fetch(`${servers[1]!.url}/status`, { headers: { 'x-authid': authid } });
        expect(status.status).toBe(200);
        expect(await status.json()).toMatchObject({ keyid, state: 'active', account: { username: expect.any(String) } });
        const list = await run(['list', '--json'], { BROKER_HOME: hs[1]!, PGPASSWORD: 'not-shown-anywhere' });
        expect(list.code, list.stderr).toBe(0);
        expect((JSON.parse(list.stdout) as { keyid: string }[]).map((r) => r.keyid)).toEqual([keyid]);
        const r = await run(['revoke', keyid], { BROKER_HOME: hs[0]! });
        expect(r.code, r.stderr).toBe(0);
        for (const s of servers) expect((await refresh(s.url, authid)).status).toBe(410);
        const doctor = await run(['doctor'], { BROKER_HOME: hs[0]!, PGPASSWORD: 'not-shown-anywhere' }, { timeoutMs: 20_000 });
        expect(doctor.stdout).toMatch(/ok {4}store: postgres:\/\/.*opens and is migrated \(1 connections\)/);
        expect(`${doctor.stdout}${doctor.stderr}${list.stdout}${list.stderr}`).not.toContain('not-shown-anywhere');
      } finally {
        entra.setAccessTokenTtl(30);
      }
    });
  });

  describe('1. same security model', () => {
    it('a dump of the database plus every settings.json holds no refresh token, access token or AuthID secret', async () => {
      const { url, servers, homes: hs } = await instances(2);
      const { authid } = await connectAcross(servers[0]!, servers[1]!);
      for (let i = 0; i < 3; i++) {
        const r = await refresh(servers[i % 2]!.url, authid);
        expect(r.status, `${r.headers.get('x-reason')}\n${servers.map((s) => s.stderr()).join('\n')}`).toBe(200);
      }
      // A login left half-way and a fetch token waiting: transients are in the dump too.
      await fetch(`${servers[0]!.url}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ id: 'onedrivev2', passcode: PASSCODE }),
      });
      const pgDump = join(dirname(spawnSync('sh', ['-c', 'ls /usr/lib/postgresql/*/bin/pg_dump | tail -1'], { encoding: 'utf8' }).stdout.trim()), 'pg_dump');
      const dump = spawnSync(pgDump, ['--data-only', '--inserts', url], { encoding: 'utf8' });
      expect(dump.status, dump.stderr).toBe(0);
      expect(dump.stdout).toContain('INSERT INTO public.connections');
      const everything = `${dump.stdout}\n${hs.map((h) => readFileSync(join(h, 'settings.json'), 'utf8')).join('\n')}`;
      const secret = authid.split(':')[1]!;
      const { accessTokens, refreshTokens } = entra.issued();
      expect(accessTokens.length + refreshTokens.length).toBeGreaterThan(4);
      for (const t of [...accessTokens, ...refreshTokens, secret]) expect(everything).not.toContain(t);
      // Nor in base64 or hex, the forms a dump might use for bytes.
      expect(everything).not.toContain(Buffer.from(secret).toString('hex'));
    });
  });

  describe('7. limits are shared', () => {
    it('wrong AuthIDs from one address count across instances: the 21st try, wherever it lands, is 429', async () => {
      const { servers } = await instances(3);
      const statuses: number[] = [];
      const wrong = generateAuthId((n) => new Uint8Array(randomBytes(n))).authid;
      for (let i = 0; i < 21; i++) statuses.push((await refresh(servers[i % 3]!.url, wrong)).status);
      // 19 wrong answers, then the 20th failure (counted on whichever instance) locks the address everywhere.
      expect(statuses).toEqual([...Array(19).fill(401), 429, 429]);
    });

    it('wrong passcodes count across instances: five spread over three, then the sixth is 429 on any of them', async () => {
      const { servers } = await instances(3);
      const post = (s: Served, passcode: string) =>
        fetch(`${s.url}/login`, {
          method: 'POST',
          redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ id: 'onedrivev2', passcode }),
        });
      for (let i = 0; i < 5; i++) expect((await post(servers[i % 3]!, `wrong-passcode-${i}`)).status).toBe(403);
      for (const s of servers) expect((await post(s, PASSCODE)).status).toBe(429);
    });
  });

  describe('moving a store', () => {
    it('`broker store migrate --to postgres://…` copies a SQLite store; every AuthID keeps working; a non-empty database is refused; --to FILE goes back', async () => {
      entra.setAccessTokenTtl(3600);
      try {
        const { home } = await configuredHome(entra, PASSCODE);
        const alone = await serve(home);
        running.push(alone);
        const { authid } = await connectOverHttp(alone.url, PASSCODE, entra.login);
        expect((await refresh(alone.url, authid)).status).toBe(200);
        await alone.stop();
        const url = await cluster.createDatabase();
        const moved = await run(['store', 'migrate', '--to', url], { BROKER_HOME: home }, { timeoutMs: 20_000 });
        expect(moved.code, moved.stderr).toBe(0);
        expect(moved.stdout).toMatch(/Copied 1 connection/);
        const again = await run(['store', 'migrate', '--to', url], { BROKER_HOME: home }, { timeoutMs: 20_000 });
        expect(again.code).not.toBe(0);
        expect(again.stderr).toMatch(/already holds 1 connection/);
        const [a, b] = await serveAll([home, home], { BROKER_DATABASE_URL: url });
        running.push(a!, b!);
        entra.setAccessTokenTtl(30); // every request now refreshes, on either instance
        for (let i = 0; i < 4; i++) expect((await refresh([a, b][i % 2]!.url, authid)).status).toBe(200);
        await Promise.all([a!.stop(), b!.stop()]);
        const file = join(dirname(home), 'back.db');
        const back = await run(['store', 'migrate', '--to', file], { BROKER_HOME: home, BROKER_DATABASE_URL: url }, { timeoutMs: 20_000 });
        expect(back.code, back.stderr).toBe(0);
        expect(back.stdout).toMatch(/Copied 1 connection/);
        expect(entra.stats().reuseDetected).toBe(0);
      } finally {
        entra.setAccessTokenTtl(30);
      }
    });
  });

  describe('6. faults', () => {
    it('three instances starting together on an empty database migrate it once', async () => {
      const url = await cluster.createDatabase();
      const hs = await homes(url, 3);
      const servers = await serveAll(hs);
      running.push(...servers);
      const { SQL } = await import('bun');
      const sql = new SQL(url, { max: 1 });
      try {
        expect((await sql`SELECT version FROM broker_schema`).map((r: { version: number }) => r.version)).toEqual([PG_MIGRATIONS.length]);
      } finally {
        await sql.close();
      }
      for (const s of servers) expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    });

    it('SIGKILL of one instance during a refresh: the others keep serving, the connection survives', async () => {
      const { servers } = await instances(3);
      const [a, b, c] = servers as [Served, Served, Served];
      const { authid } = await connectAcross(a, b);
      entra.setTokenDelay(1500);
      try {
        const dying = refresh(a.url, authid).catch(() => null);
        await new Promise((r) => setTimeout(r, 400));
        await a.stop('SIGKILL');
        await dying;
      } finally {
        entra.setTokenDelay(0);
      }
      for (let i = 0; i < 4; i++) {
        const r = await refresh([b, c][i % 2]!.url, authid);
        expect(r.status, r.headers.get('x-reason') ?? '').toBe(200);
      }
    });

    it('PostgreSQL stopped: a clear 5xx with X-Reason (not 503, no hang), a cached token still served; all recovers by itself', async () => {
      const { servers } = await instances(2);
      const [a, b] = servers as [Served, Served];
      entra.setAccessTokenTtl(3600);
      let other: { authid: string } | undefined;
      try {
        const { authid } = await connectAcross(a, b, 'outage-1');
        other = await connectAcross(a, b, 'outage-2');
        expect((await refresh(a.url, authid)).status).toBe(200); // cached at A
        cluster.stop();
        const stoppedAt = Date.now();
        try {
          const t0 = Date.now();
          const cached = await refresh(a.url, authid);
          expect(cached.status, cached.headers.get('x-reason') ?? '').toBe(200);
          const cold = await refresh(b.url, other.authid);
          expect(cold.status).toBeGreaterThanOrEqual(500);
          expect(cold.status).not.toBe(503);
          expect(cold.headers.get('x-reason')).toMatch(/database|store/i);
          expect(Date.now() - t0).toBeLessThan(10_000);
          // Down for 10 s, as in the issue: every request answered at once, none hangs.
          while (Date.now() - stoppedAt < 10_000) {
            const t = Date.now();
            const r = await refresh(b.url, other.authid);
            expect(r.status).toBe(500);
            expect(Date.now() - t).toBeLessThan(6000);
            expect((await refresh(a.url, authid)).status).toBe(200);
            await new Promise((res) => setTimeout(res, 500));
          }
        } finally {
          cluster.start();
        }
        let recovered = 0;
        for (let i = 0; i < 40 && recovered === 0; i++) {
          const r = await refresh(b.url, other.authid);
          if (r.status === 200) recovered = i + 1;
          else await new Promise((res) => setTimeout(res, 250));
        }
        expect(recovered).toBeGreaterThan(0);
        expect(b.stderr()).toMatch(/store\.changes_down/);
        expect((await refresh(a.url, authid)).status).toBe(200);
      } finally {
        entra.setAccessTokenTtl(30);
      }
    });
  });
});
