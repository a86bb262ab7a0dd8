import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { BrokerError } from '../src/errors.ts';
import { SqliteStore } from '../src/store/store.ts';
import { prng } from './support/prng.ts';
import { expireCachedToken, PASSCODE, PUBLIC_URL } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';
import { AUTHID, fakeAuthid, fakeKeyid } from './support/authid.ts';
import { form } from './support/http.ts';

const h = useHarness();

describe('login', () => {
  it('starts the code flow with PKCE S256, state, nonce and a HttpOnly SameSite cookie', async () => {
    const res = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    expect(res.status).toBe(302);
    const url = new URL(res.headers.get('location')!);
    expect(`${url.origin}${url.pathname}`).toBe(`${h.entra.authority}/consumers/oauth2/v2.0/authorize`);
    const q = url.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('state')!.length).toBeGreaterThanOrEqual(43);
    expect(q.get('nonce')!.length).toBeGreaterThanOrEqual(43);
    expect(q.get('redirect_uri')).toBe(`${PUBLIC_URL}/logged-in`);
    expect(q.get('scope')!.split(' ').sort()).toEqual(['Files.ReadWrite', 'offline_access', 'openid', 'profile']);
    // Nothing secret in the URL the broker builds.
    expect(url.toString()).not.toContain(h.entra.clientSecret);
    expect(url.toString()).not.toContain(encodeURIComponent(PASSCODE));
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
  });

  it('a wrong passcode never reaches Microsoft', async () => {
    const res = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: 'wrong' })), { address: '10.9.9.9' });
    expect(res.status).toBe(403);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(await res.text()).toContain('Wrong connect passcode');
  });

  it('the passcode is never taken from a URL', async () => {
    const res = await h.app(new Request(`${PUBLIC_URL}/login?id=sharepoint&passcode=${encodeURIComponent(PASSCODE)}`));
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/?type=sharepoint');
  });

  it('connects, shows the authid once, and seals the account and tokens', async () => {
    const c = await h.connect({ username: 'alice' });
    expect(c.authid).toMatch(AUTHID);
    expect(c.page).toContain('Signed in as alice@');
    const refreshed = await h.refresh(c.authid);
    const token = (await refreshed.json()) as { access_token: string };
    // The store file holds neither the account name, nor the access token, nor the authid's secret.
    await h.store.list(); // forces nothing; the WAL may still hold the rows, so read both files
    const bytes = Buffer.concat([readFileSync(h.dbPath), safeRead(`${h.dbPath}-wal`)]).toString('latin1');
    expect(bytes).toContain(c.keyid);
    expect(bytes).not.toContain('alice');
    expect(bytes).not.toContain(token.access_token);
    expect(bytes).not.toContain(c.authid.split(':')[1]!);
  });

  it('the state is single-use and bound to the browser cookie', async () => {
    const started = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
    const callback = await h.entra.login(started.headers.get('location')!);
    // Without the cookie (another browser): refused, and the state is spent.
    const stolen = await h.app(new Request(callback, { headers: { accept: 'text/html' } }));
    expect(stolen.status).toBe(400);
    expect(stolen.headers.get('x-reason')).toMatch(/another browser|unknown/);
    const replay = await h.app(new Request(callback, { headers: { cookie } }));
    expect(replay.status).toBe(400);
    expect(replay.headers.get('x-reason')).toMatch(/already used|unknown|expired/);
  });

  it('a code injected into another login fails (PKCE binds the code to its login)', async () => {
    const a = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    const b = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    const qa = new URL(a.headers.get('location')!).searchParams;
    const qb = new URL(b.headers.get('location')!).searchParams;
    // Every login has its own verifier, so its own challenge.
    expect(qa.get('code_challenge')).not.toBe(qb.get('code_challenge'));
    const cookieA = a.headers.get('set-cookie')!.split(';')[0]!;
    const stateA = qa.get('state')!;
    const callbackB = new URL(await h.entra.login(b.headers.get('location')!));
    callbackB.searchParams.set('state', stateA);
    h.entra.resetStats();
    const idTokens = h.entra.issued().idTokens.length;
    const res = await h.app(new Request(callbackB, { headers: { cookie: cookieA } }));
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    // Refused by the provider, for PKCE: B's code with A's verifier. (With one verifier for every
    // login the provider would accept it, and only the nonce check would stop the login.)
    expect(h.entra.stats().byGrant.authorization_code).toBe(1);
    expect(h.entra.grantErrors()).toEqual(['code_verifier does not match code_challenge']);
    expect(h.entra.issued().idTokens.length, 'no id_token was issued, so the nonce never came into play').toBe(idTokens);
  });

  it("an error from Microsoft is shown without its description text, in the broker's own words", async () => {
    const started = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
    const callback = await h.entra.login(started.headers.get('location')!, { cancel: true });
    // The provider's own description (AADSTS65004: User declined…), and one that looks like a secret.
    expect(new URL(callback).searchParams.get('error_description')).toMatch(/AADSTS65004/);
    const res = await h.app(new Request(callback, { headers: { cookie, accept: 'text/html' } }));
    expect(res.status).toBe(400);
    const page = await res.text();
    expect(page).toContain('Microsoft did not complete the login (access_denied).');
    expect(page).not.toMatch(/AADSTS65004|declined/);
    expect(res.headers.get('x-reason')).not.toMatch(/AADSTS65004|declined/);

    const again = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    const state = new URL(again.headers.get('location')!).searchParams.get('state')!;
    const marker = 'SECRET-MARKER-7f3a9c<script>alert(1)</script>';
    const forged = new URL(`${PUBLIC_URL}/logged-in`);
    forged.search = new URLSearchParams({ error: 'access_denied', error_description: marker, state }).toString();
    const res2 = await h.app(new Request(forged, { headers: { cookie: again.headers.get('set-cookie')!.split(';')[0]!, accept: 'text/html' } }));
    expect(res2.status).toBe(400);
    const page2 = await res2.text();
    expect(page2).toContain('Microsoft did not complete the login (access_denied).');
    expect(page2).not.toContain('SECRET-MARKER');
    expect(res2.headers.get('x-reason') ?? '').not.toContain('SECRET-MARKER');
  });
});

describe('/refresh', () => {
  it('answers the JSON Duplicati reads, and serves the cache without calling Microsoft', async () => {
    const c = await h.connect();
    h.entra.resetStats();
    const res = await h.refresh(c.authid, { headers: { 'user-agent': 'Duplicati v2.2.0.0' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['access_token', 'expires', 'expires_at', 'token_type', 'type']);
    expect(body.type).toBe('onedrivev2');
    expect(body.token_type).toBe('Bearer');
    expect(Number.isInteger(body.expires)).toBe(true);
    expect(body.expires as number).toBeGreaterThan(3500);
    expect(Date.parse(body.expires_at as string)).toBeGreaterThan(Date.now());
    const again = (await (await h.refresh(c.authid)).json()) as Record<string, unknown>;
    expect(again.access_token).toBe(body.access_token);
    expect(h.entra.stats().tokenRequests).toBe(0);
  });

  it('takes the authid from X-AuthID, the authid query or form field, or Authorization: Bearer', async () => {
    const c = await h.connect();
    const viaQuery = await h.app(new Request(`${PUBLIC_URL}/refresh?authid=${encodeURIComponent(c.authid)}`));
    const viaForm = await h.app(new Request(`${PUBLIC_URL}/refresh`, form({ authid: c.authid })));
    const viaBearer = await h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { authorization: `Bearer ${c.authid}` } }));
    for (const r of [viaQuery, viaForm, viaBearer]) expect(r.status).toBe(200);
  });

  it('gives the bare token for Accept: text/plain', async () => {
    const c = await h.connect();
    const json = (await (await h.refresh(c.authid)).json()) as { access_token: string };
    const plain = await h.refresh(c.authid, { headers: { accept: 'text/plain' } });
    expect(plain.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await plain.text()).toBe(json.access_token);
  });

  it('refreshes when the token is near its end, rotating the refresh token every time', async () => {
    const c = await h.connect();
    h.entra.resetStats();
    const seen = new Set<string>();
    for (let i = 0; i < 5; i++) {
      expireCachedToken(h);
      const res = await h.refresh(c.authid);
      expect(res.status).toBe(200);
      seen.add(((await res.json()) as { access_token: string }).access_token);
    }
    expect(seen.size).toBe(5);
    const s = h.entra.stats();
    expect(s.byGrant.refresh_token).toBe(5);
    // Every refresh used the newest refresh token: the provider saw no reuse.
    expect(s.reuseDetected).toBe(0);
    expect((await h.store.get(c.keyid))!.lastRefreshAt).not.toBeNull();
  });

  it('30 concurrent refreshes of one connection make one upstream call', async () => {
    const c = await h.connect();
    expireCachedToken(h);
    h.entra.resetStats();
    h.entra.setTokenDelay(200);
    try {
      const all = await Promise.all(Array.from({ length: 30 }, () => h.refresh(c.authid)));
      const tokens = await Promise.all(all.map(async (r) => ((await r.json()) as { access_token: string }).access_token));
      expect(all.every((r) => r.status === 200)).toBe(true);
      expect(new Set(tokens).size).toBe(1);
      expect(h.entra.stats().byGrant.refresh_token).toBe(1);
    } finally {
      h.entra.setTokenDelay(0);
    }
  });

  it('unknown keyid, wrong secret and revoked answer alike to anyone without the authid', async () => {
    const c = await h.connect();
    const victim = await h.connect();
    await h.app(new Request(`${PUBLIC_URL}/revoke`, { method: 'POST', headers: { 'x-authid': victim.authid } }));
    const secret = c.authid.split(':')[1]!;
    const flipped = secret.startsWith('a') ? `b${secret.slice(1)}` : `a${secret.slice(1)}`;
    const unknownKey = fakeAuthid(fakeKeyid(), secret);
    const wrongSecret = `${c.keyid}:${flipped}`;
    const revokedWrongSecret = `${victim.keyid}:${flipped}`;
    const answers = await Promise.all(
      [unknownKey, wrongSecret, revokedWrongSecret].map(async (a) => {
        const r = await h.refresh(a);
        return { status: r.status, reason: r.headers.get('x-reason'), body: await r.text() };
      }),
    );
    expect(answers[0]!.status).toBe(401);
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    const revoked = await h.refresh(victim.authid);
    expect(revoked.status).toBe(410);
    expect(revoked.headers.get('x-reason')).toMatch(/revoked; create a new one at http:\/\/broker\.test\//);
  });

  it('a token served from memory goes only to the exact AuthID that proved itself: a wrong secret is refused and counted, the right one is never slowed', async () => {
    const c = await h.connect();
    const other = await h.connect({ username: 'bystander' });
    for (let i = 0; i < 3; i++) expect((await h.refresh(c.authid)).status).toBe(200);
    const secret = c.authid.split(':')[1]!;
    const from = { address: '198.51.100.77' };
    const refresh = async (authid: string) => (await h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': authid } }), from)).status;
    const seen: number[] = [];
    for (let i = 0; i < 20; i++) {
      // Each wrong secret differs from the right one in one character, at a different place each time.
      const k = i % secret.length;
      seen.push(await refresh(`${c.keyid}:${secret.slice(0, k)}${secret[k] === 'a' ? 'b' : 'a'}${secret.slice(k + 1)}`));
    }
    expect(seen).toEqual([...Array(19).fill(401), 429]);
    // Another connection's secret with this keyid is no proof either.
    expect(await refresh(`${c.keyid}:${other.authid.split(':')[1]}`)).toBe(429);
    expect(await refresh(c.authid)).toBe(200);
    expect(await refresh(c.authid.toUpperCase())).toBe(200);
  });

  it("a request's last-use stamp is written after its answer, not before (SQLite's write waits for an fsync)", async () => {
    const c = await h.connect();
    expect((await h.refresh(c.authid)).status).toBe(200);
    await new Promise((r) => setImmediate(r)); // that request's own stamp
    const store = h.broker.ctx.store;
    const touch = store.touch.bind(store);
    const stamped: string[] = [];
    store.touch = async (keyid, now) => {
      stamped.push(keyid);
      return touch(keyid, now);
    };
    try {
      h.clock.offsetMs += 61_000; // more than a minute since the last use: a stamp is due
      const res = await h.refresh(c.authid);
      expect(res.status).toBe(200);
      expect(stamped).toEqual([]);
      await new Promise((r) => setImmediate(r));
      expect(stamped).toEqual([c.keyid]);
      expect((await store.get(c.keyid))!.lastUsedAt).toBeGreaterThan(Date.now());
    } finally {
      store.touch = touch;
      h.clock.offsetMs = 0;
    }
  });

  it('a revoke from another process is honoured at once, even with a token cached', async () => {
    const c = await h.connect();
    expect((await h.refresh(c.authid)).status).toBe(200);
    const cli = SqliteStore.open(h.dbPath);
    await cli.revoke(c.keyid, Date.now());
    await cli.close();
    const res = await h.refresh(c.authid);
    expect(res.status).toBe(410);
    expect(await res.text()).not.toContain('access_token');
  });

  it('Microsoft asking for a new sign-in marks the connection and stops calling Microsoft', async () => {
    const c = await h.connect();
    expireCachedToken(h);
    h.entra.failNext(1, { status: 400, body: { error: 'invalid_grant', error_description: 'AADSTS700082: expired', error_codes: [700082] } });
    const res = await h.refresh(c.authid);
    expect(res.status).toBe(400);
    expect(res.headers.get('x-reason')).toMatch(/sign in again: the connection was not used for 90 days/);
    expect(res.headers.get('x-reason')).not.toContain('AADSTS700082: expired'); // the description text is never echoed
    expect((await h.store.get(c.keyid))!.state).toBe('login_required');
    h.entra.resetStats();
    const again = await h.refresh(c.authid);
    expect(again.status).toBe(400);
    expect(h.entra.stats().tokenRequests).toBe(0);
  });
});

describe('revoke over HTTP', () => {
  it('POST /revoke with X-AuthID ends the connection; the cached token is never served again', async () => {
    const c = await h.connect();
    expect((await h.refresh(c.authid)).status).toBe(200);
    const res = await h.app(new Request(`${PUBLIC_URL}/revoke`, { method: 'POST', headers: { 'x-authid': c.authid } }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ revoked: true, keyid: c.keyid });
    expect((await h.refresh(c.authid)).status).toBe(410);
    expect((await h.store.get(c.keyid))!.sealed).toBeNull();
  });

  it('the revoke form (POST /revoked) works from a browser and explains consent removal', async () => {
    const c = await h.connect();
    const res = await h.app(
      new Request(`${PUBLIC_URL}/revoked`, {
        ...form({ authid: c.authid }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      }),
    );
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('connection is deleted');
    expect(page).toContain('account.microsoft.com');
    expect((await h.refresh(c.authid)).status).toBe(410);
  });

  it('a revoke also drops a rotation that only memory held (the store could not take it): it is never written back', async () => {
    const c = await h.connect();
    expireCachedToken(h);
    const healthWarnings = async () => ((await (await h.app(new Request(`${PUBLIC_URL}/healthz`))).json()) as { warnings: string[] }).warnings;
    // The disk is full when Microsoft's rotation comes back.
    const full = vi.spyOn(h.store, 'compareAndSwap').mockImplementation(() => {
      throw new BrokerError('store_error', 'The store could not be written: database or disk is full.');
    });
    try {
      const failed = await h.refresh(c.authid);
      expect(failed.status).toBe(500);
      expect((await healthWarnings()).join(' ')).toMatch(/1 connection's newest refresh token is held only in memory/);
      const revoked = await h.app(new Request(`${PUBLIC_URL}/revoke`, { method: 'POST', headers: { 'x-authid': c.authid } }));
      expect(revoked.status).toBe(200);
      // Nothing left that a restart would lose, so the operator is not told to keep the broker up for it.
      expect((await healthWarnings()).join(' ')).not.toMatch(/held only in memory/);
    } finally {
      full.mockRestore();
    }
    const writes = vi.spyOn(h.store, 'compareAndSwap');
    try {
      expect((await h.refresh(c.authid)).status).toBe(410);
      expect(writes).not.toHaveBeenCalled();
    } finally {
      writes.mockRestore();
    }
    const row = (await h.store.get(c.keyid))!;
    expect(row.state).toBe('revoked');
    expect(row.sealed).toBeNull();
    h.clock.offsetMs = 0;
  });

  it('2000 wrong secrets for a real keyid, and secrets wrong only in their last characters, are all refused', async () => {
    const c = await h.connect({ username: 'many-wrong' });
    const secret = c.authid.split(':')[1]!;
    const b32 = 'abcdefghijklmnopqrstuvwxyz234567';
    const random = prng(0x7a6);
    const wrong = new Set<string>();
    while (wrong.size < 2000) {
      let s = '';
      for (let i = 0; i < secret.length; i++) s += b32[Math.floor(random() * 32)];
      if (s !== secret) wrong.add(s);
    }
    // Only the last one or two characters (the last byte of the secret) differ.
    for (let i = 1; i <= 2; i++) {
      for (const ch of b32) {
        const s = secret.slice(0, -i) + ch + secret.slice(secret.length - i + 1);
        if (s !== secret) wrong.add(s);
      }
    }
    const outcomes = new Map<string, number>();
    let n = 0;
    for (const s of wrong) {
      n++;
      // One address each, so that every attempt reaches the comparison, not the rate limit.
      const client = `10.${(n >> 8) & 255}.${n & 255}.7`;
      let code = 'accepted';
      try {
        await h.broker.tokens.authenticate(`${c.keyid}:${s}`, client);
      } catch (e) {
        code = (e as BrokerError).code;
      }
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
    }
    expect(Object.fromEntries(outcomes)).toEqual({ invalid_authid: wrong.size });
    // The real one still works.
    expect((await h.broker.tokens.authenticate(c.authid, '10.255.255.7')).id.keyid).toBe(c.keyid);
  });

  it('a wrong secret cannot revoke', async () => {
    const c = await h.connect();
    const secret = c.authid.split(':')[1]!;
    const wrong = `${c.keyid}:${secret.startsWith('a') ? 'b' : 'a'}${secret.slice(1)}`;
    const res = await h.app(new Request(`${PUBLIC_URL}/revoke`, { method: 'POST', headers: { 'x-authid': wrong } }));
    expect(res.status).toBe(401);
    expect((await h.refresh(c.authid)).status).toBe(200);
  });
});

function safeRead(p: string): Buffer {
  try {
    return readFileSync(p);
  } catch {
    return Buffer.alloc(0);
  }
}
