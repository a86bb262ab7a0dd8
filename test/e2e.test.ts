/**
 * End to end: the compiled binary, as separate processes, against the local
 * Entra-like provider (rotation on every refresh, reuse detection on).
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOOPBACK_CALLBACK, configuredHome, connectOverHttp, newHome, run, serve, type Served } from './support/binary.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';
import { fakeKeyid } from './support/authid.ts';

const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });

async function freshBroker(): Promise<{ home: string; served: Served }> {
  const { home } = await configuredHome(entra, PASSCODE);
  return { home, served: await serve(home) };
}

const refresh = (url: string, authid: string) => fetch(`${url}/refresh`, { headers: { 'x-authid': authid, 'user-agent': 'Duplicati v2.2.0.0' } });

describe('broker init', () => {
  it('without a terminal and without flags exits 2 at once, naming what is missing', async () => {
    const t0 = Date.now();
    const r = await run(['init'], { BROKER_HOME: newHome() });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--client-id');
    expect(r.stderr).toContain('--client-secret-file');
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('rejects a secret ID pasted instead of the secret Value', async () => {
    const home = newHome();
    const r = await run(['init', '--non-interactive', '--client-id', entra.clientId], {
      BROKER_HOME: home,
      BROKER_CLIENT_SECRET: '2b5c8f3e-1d2a-4c3b-9e8f-7a6b5c4d3e2f',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/secret's ID/);
  });

  it('writes settings 0600 in a 0700 folder and prints a generated passcode once', async () => {
    const home = newHome();
    const r = await run(['init', '--non-interactive', '--client-id', entra.clientId], { BROKER_HOME: home, BROKER_CLIENT_SECRET: 'abc~secret-value' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Connect passcode \(shown once.*\): [a-z2-7-]{20,}/);
    expect(statSync(home).mode & 0o777).toBe(0o700);
    expect(statSync(join(home, 'settings.json')).mode & 0o777).toBe(0o600);
    // Re-running keeps the passcode (nothing printed) and the other answers.
    const again = await run(['init', '--non-interactive', '--tenant', 'common'], { BROKER_HOME: home });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toMatch(/passcode/i);
  });
});

describe('broker serve, list, revoke', () => {
  let home: string;
  let served: Served;
  beforeAll(async () => {
    ({ home, served } = await freshBroker());
  });
  afterAll(async () => {
    await served?.stop();
  });

  it('connects, refreshes, serves the cache, and lists the connection without secrets', async () => {
    const c = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'e2e-list' });
    entra.resetStats();
    const first = await refresh(served.url, c.authid);
    expect(first.status).toBe(200);
    const body = (await first.json()) as { access_token: string; expires: number; type: string };
    expect(body.type).toBe('onedrivev2');
    expect(body.expires).toBeGreaterThan(30);
    expect(((await (await refresh(served.url, c.authid)).json()) as { access_token: string }).access_token).toBe(body.access_token);
    expect(entra.stats().tokenRequests).toBe(0);

    const list = await run(['list', '--json'], { BROKER_HOME: home });
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as Record<string, unknown>[];
    const row = rows.find((r) => r.keyid === c.keyid)!;
    expect(row).toMatchObject({ keyid: c.keyid, service: 'onedrivev2', state: 'active' });
    expect(Object.keys(row)).toEqual(expect.arrayContaining(['keyid', 'service', 'created_at', 'last_refresh_at', 'state']));
    const text = await run(['list'], { BROKER_HOME: home });
    for (const out of [list.stdout, text.stdout]) {
      expect(out).not.toContain(c.authid.split(':')[1]);
      expect(out).not.toContain('e2e-list');
      expect(out).not.toContain(body.access_token);
    }
    expect(text.stdout).toContain(c.keyid);
  });

  it('rotates across several refreshes and 30 concurrent callers cause at most two upstream calls', async () => {
    // Tokens shorter than the broker's minimum remaining life (35 s) are refreshed on every request.
    entra.setAccessTokenTtl(30);
    try {
      const c = await connectOverHttp(served.url, PASSCODE, entra.login);
      entra.resetStats();
      const tokens = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const r = await refresh(served.url, c.authid);
        expect(r.status).toBe(200);
        tokens.add(((await r.json()) as { access_token: string }).access_token);
      }
      expect(entra.stats().byGrant.refresh_token).toBe(4);
      expect(tokens.size).toBe(4);
      entra.resetStats();
      entra.setTokenDelay(300);
      const all = await Promise.all(Array.from({ length: 30 }, () => refresh(served.url, c.authid)));
      expect(all.map((r) => r.status)).toEqual(Array(30).fill(200));
      expect(entra.stats().byGrant.refresh_token).toBeGreaterThanOrEqual(1);
      expect(entra.stats().byGrant.refresh_token).toBeLessThanOrEqual(2);
      expect(entra.stats().reuseDetected).toBe(0);
    } finally {
      entra.setTokenDelay(0);
      entra.setAccessTokenTtl(3600);
    }
  });

  it('revoke from the CLI while serving takes effect at once', async () => {
    const c = await connectOverHttp(served.url, PASSCODE, entra.login);
    expect((await refresh(served.url, c.authid)).status).toBe(200);
    const r = await run(['revoke', c.keyid], { BROKER_HOME: home });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Revoked ${c.keyid}`);
    const after = await refresh(served.url, c.authid);
    expect(after.status).toBe(410);
    expect(after.headers.get('x-reason')).toMatch(/revoked/);
    const list = JSON.parse((await run(['list', '--json'], { BROKER_HOME: home })).stdout) as { keyid: string; state: string }[];
    expect(list.find((x) => x.keyid === c.keyid)?.state).toBe('revoked');
    expect((await run(['revoke', fakeKeyid()], { BROKER_HOME: home })).code).toBe(4);
  });

  it('`broker revoke` in another process: a connection served from the cache just before is refused on the very next request, others go on', async () => {
    const a = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'e2e-revoke-hot' });
    const b = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'e2e-revoke-bystander' });
    // Warm: many cache hits, some concurrent, so that everything the server remembers about both is in memory.
    for (let i = 0; i < 3; i++) {
      const all = await Promise.all(Array.from({ length: 20 }, (_, k) => refresh(served.url, k % 2 ? a.authid : b.authid)));
      expect(all.map((r) => r.status)).toEqual(Array(20).fill(200));
    }
    entra.resetStats();
    const r = await run(['revoke', a.authid], { BROKER_HOME: home });
    expect(r.code, r.stderr).toBe(0);
    // The very next request, with nothing in between: refused as revoked, and no call to the provider.
    const next = await refresh(served.url, a.authid);
    expect(next.status).toBe(410);
    expect(((await next.json()) as { error: string }).error).toBe('revoked');
    expect(entra.stats().tokenRequests).toBe(0);
    // And every request after it; the other connection is untouched.
    const after = await Promise.all(Array.from({ length: 10 }, (_, k) => refresh(served.url, k % 2 ? a.authid : b.authid)));
    expect(after.map((x) => x.status)).toEqual(Array.from({ length: 10 }, (_, k) => (k % 2 ? 410 : 200)));
  });

  it('revokes and lists from other processes, one after another: each revoke is refused on the next request, and stays so in the file', async () => {
    // serve holds the store open throughout; each CLI run opens and closes it beside serve, so SQLite's shared
    // memory and its locks are shared between processes. A revoke and a list with no request between them is
    // the sequence that once got past a change check which had lost those locks (found by review).
    const users = ['e2e-seq-a', 'e2e-seq-b', 'e2e-seq-c'];
    const [a, b, c] = await Promise.all(users.map((username) => connectOverHttp(served.url, PASSCODE, entra.login, { username })));
    const statuses = async () => Promise.all([a!, b!, c!].map(async (x) => (await refresh(served.url, x.authid)).status));
    for (let i = 0; i < 5; i++) expect(await statuses()).toEqual([200, 200, 200]);
    const listed = async () => {
      const r = await run(['list', '--json'], { BROKER_HOME: home });
      expect(r.code, r.stderr).toBe(0);
      const rows = JSON.parse(r.stdout) as { keyid: string; state: string }[];
      return [a!, b!, c!].map((x) => rows.find((row) => row.keyid === x.keyid)?.state);
    };
    expect((await run(['revoke', a!.keyid], { BROKER_HOME: home })).code).toBe(0);
    expect(await statuses()).toEqual([410, 200, 200]);
    expect(await listed()).toEqual(['revoked', 'active', 'active']);
    expect(await statuses()).toEqual([410, 200, 200]);
    expect((await run(['revoke', b!.keyid], { BROKER_HOME: home })).code).toBe(0);
    expect(await listed()).toEqual(['revoked', 'revoked', 'active']);
    expect(await statuses()).toEqual([410, 410, 200]);
    for (let i = 0; i < 3; i++) expect(await statuses()).toEqual([410, 410, 200]);
    expect(await listed()).toEqual(['revoked', 'revoked', 'active']);
  });

  it('`broker revoke <keyid>:<wrong secret>` is refused: exit 4, nothing revoked, the connection still works', async () => {
    const c = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'e2e-revoke-wrong' });
    expect((await refresh(served.url, c.authid)).status).toBe(200);
    const secret = c.authid.split(':')[1]!;
    const wrongSecrets = [
      'a'.repeat(56),
      `${secret.slice(0, -1)}${secret.endsWith('a') ? 'b' : 'a'}`, // only the last character differs
      `${secret.startsWith('a') ? 'b' : 'a'}${secret.slice(1)}`,
    ];
    for (const wrong of wrongSecrets) {
      const r = await run(['revoke', `${c.keyid}:${wrong}`], { BROKER_HOME: home });
      expect(r.code, r.stdout + r.stderr).toBe(4);
      expect(r.stderr).toContain('and this secret');
      expect(r.stdout).not.toContain('Revoked');
      expect(r.stderr + r.stdout).not.toContain(wrong);
    }
    const list = JSON.parse((await run(['list', '--json'], { BROKER_HOME: home })).stdout) as { keyid: string; state: string }[];
    expect(list.find((x) => x.keyid === c.keyid)?.state).toBe('active');
    expect((await refresh(served.url, c.authid)).status).toBe(200);
    // The right AuthID does revoke.
    const ok = await run(['revoke', c.authid], { BROKER_HOME: home });
    expect(ok.code, ok.stderr).toBe(0);
    expect((await refresh(served.url, c.authid)).status).toBe(410);
  });

  it('revoke over HTTP', async () => {
    const c = await connectOverHttp(served.url, PASSCODE, entra.login);
    const r = await fetch(`${served.url}/revoke`, { method: 'POST', headers: { 'x-authid': c.authid } });
    expect(r.status).toBe(200);
    expect((await refresh(served.url, c.authid)).status).toBe(410);
  });

  it('malformed requests of any size get a 4xx, never a 5xx', async () => {
    const attempts: [string, RequestInit][] = [
      ['/refresh', { headers: { 'x-authid': 'x'.repeat(8000) } }],
      ['/refresh', { headers: { 'x-authid': ':' } }],
      ['/refresh', { headers: { 'x-authid': 'bk1:' } }],
      ['/refresh?authid=%ZZ%', {}],
      ['/refresh', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `authid=${'%'.repeat(10)}` }],
      ['/refresh', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a'.repeat(40_000) }],
      ['/refresh', { method: 'POST', body: new Uint8Array(1000).map((_, i) => i % 256) }],
      ['/refresh', { method: 'DELETE' }],
      ['/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'id=nope&passcode=x' }],
      ['/logged-in?state=forged&code=forged', { headers: { cookie: 'broker_login=forged' } }],
      ['/logged-in', {}],
      ['/revoke', { method: 'POST' }],
      ['/nope', {}],
    ];
    for (const [path, init] of attempts) {
      const r = await fetch(`${served.url}${path}`, { redirect: 'manual', ...init });
      expect(r.status, `${init.method ?? 'GET'} ${path}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${init.method ?? 'GET'} ${path}`).toBeLessThan(500);
      expect(r.headers.get('x-reason'), path).toBeTruthy();
    }
    expect((await fetch(`${served.url}/healthz`)).status).toBe(200);
  });

  it('every file under BROKER_HOME is private to its owner', () => {
    expect(statSync(home).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(home)) expect(statSync(join(home, f)).mode & 0o777, f).toBe(0o600);
  });
});

describe('restarts and signals', () => {
  it('a restarted serve uses the newest refresh token (the provider sees no reuse)', async () => {
    const { home, served } = await freshBroker();
    entra.setAccessTokenTtl(30);
    const c = await connectOverHttp(served.url, PASSCODE, entra.login);
    let current = served;
    try {
      entra.resetStats();
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 2; i++) expect((await refresh(current.url, c.authid)).status).toBe(200);
        expect(await current.stop('SIGTERM')).toBe(0);
        current = await serve(home);
      }
      const last = await refresh(current.url, c.authid);
      expect(last.status).toBe(200);
      expect(entra.stats().byGrant.refresh_token).toBe(7);
      expect(entra.stats().reuseDetected).toBe(0);
    } finally {
      entra.setAccessTokenTtl(3600);
      await current.stop();
    }
  });

  it('SIGTERM lets an in-flight refresh finish, then exits 0', async () => {
    const { served } = await freshBroker();
    entra.setAccessTokenTtl(30);
    try {
      const c = await connectOverHttp(served.url, PASSCODE, entra.login);
      entra.resetStats();
      entra.setTokenDelay(800);
      const inflight = refresh(served.url, c.authid);
      await new Promise((r) => setTimeout(r, 200));
      served.child.kill('SIGTERM');
      const res = await inflight;
      expect(res.status).toBe(200);
      expect(entra.stats().byGrant.refresh_token).toBe(1);
      expect(await served.exited).toBe(0);
    } finally {
      entra.setTokenDelay(0);
      entra.setAccessTokenTtl(3600);
      await served.stop();
    }
  });

  it.each(['text', 'json'])(
    'logs one line per request and never a secret (%s): none of the tokens the provider issued, after a real connect and a real refresh',
    async (format) => {
      // 30 s tokens are below the broker's minimum: the first /refresh rotates at the provider.
      entra.setAccessTokenTtl(30);
      const { home } = await configuredHome(entra, PASSCODE);
      const served = await serve(home, {}, ['--log-format', format]);
      try {
        const before = entra.issued();
        const c = await connectOverHttp(served.url, PASSCODE, entra.login, { username: `e2e-log-${format}` });
        const token = ((await (await refresh(served.url, c.authid)).json()) as { access_token: string }).access_token;
        await fetch(`${served.url}/refresh?authid=${encodeURIComponent(c.authid)}`);
        await fetch(`${served.url}/refresh`, { headers: { 'x-authid': `${c.keyid}:${'a'.repeat(56)}` } });
        const issued = entra.issued();
        const fresh = (all: string[], old: string[]) => all.filter((t) => !old.includes(t));
        const refreshTokens = fresh(issued.refreshTokens, before.refreshTokens);
        const accessTokens = fresh(issued.accessTokens, before.accessTokens);
        // One from the code redemption, at least one from each refresh: the log had its chances.
        expect(refreshTokens.length).toBeGreaterThanOrEqual(2);
        expect(accessTokens).toContain(token);
        const idTokens = fresh(issued.idTokens, before.idTokens);
        expect(idTokens.length).toBeGreaterThanOrEqual(1);
        await served.stop();
        const log = served.stderr();
        expect(log).toMatch(format === 'json' ? /"event":"request".*"route":"\/refresh".*"status":200/ : /request method=GET route=\/refresh status=200/);
        expect(log).toMatch(/connection\.created/);
        expect(log).toMatch(/connection\.refreshed/);
        const secrets: [string, string][] = [
          ...refreshTokens.map((t, i): [string, string] => [`refresh token #${i}`, t]),
          ...accessTokens.map((t, i): [string, string] => [`access token #${i}`, t]),
          ...idTokens.map((t): [string, string] => ['id token', t]),
          ['AuthID secret', c.authid.split(':')[1]!],
          ['client secret', entra.clientSecret],
          ['passcode', PASSCODE],
        ];
        // Whole secrets, and long enough pieces of them (a log line may be cut or reformatted).
        const leaks = secrets.filter(([, v]) => log.includes(v) || log.includes(v.slice(0, 24)) || log.includes(v.slice(-24))).map(([what]) => what);
        expect(leaks).toEqual([]);
      } finally {
        entra.setAccessTokenTtl(3600);
        await served.stop();
      }
    },
  );
});
