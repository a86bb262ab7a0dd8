/**
 * Promises of the README that no other test checked (found by mutation testing):
 * each test here fails against one hand-made mutant of src/ and passes on the
 * real code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.ts';
import { Store } from '../src/store/store.ts';
import { LOOPBACK_CALLBACK, configuredHome, serve } from './support/binary.ts';
import { startEntra, type Entra } from './support/entra.ts';
import { expireCachedToken, PASSCODE, PUBLIC_URL, startHarness, type Harness } from './support/harness.ts';

const form = (fields: Record<string, string>, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  body: new URLSearchParams(fields),
});

/** `name=value` of every Set-Cookie in a response. */
function cookiesOf(res: Response): string[] {
  return res.headers.getSetCookie().map((c) => c.split(';')[0]!.trim());
}

const AUTHID_IN_PAGE = /id="authid"[^>]*>([^<]+)</;

let h: Harness;
beforeAll(async () => {
  // One attempt per refresh (no retries within the budget): keeps the outage cases fast.
  h = await startHarness({ config: { upstreamTimeoutMs: 1000, upstreamBudgetMs: 600 } });
});
afterAll(async () => {
  await h?.close();
});

// ---------------------------------------------------------------------------
describe('a revoke that lands while a refresh is at Microsoft (Microsoft then answers fine)', () => {
  it('the refresh answers 410 and the new access token is never handed out', async () => {
    const { authid, keyid } = await h.connect({ username: 'gaps-revoke-midflight' });
    expireCachedToken(h);
    h.entra.resetStats();
    h.entra.setTokenDelay(400);
    try {
      const pending = h.refresh(authid);
      // Wait until the refresh request has reached the provider (it is held there for 400 ms).
      for (let i = 0; i < 200 && h.entra.stats().tokenRequests === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(h.entra.stats().tokenRequests).toBe(1);
      // `broker revoke` from another process: same file, another connection.
      const cli = Store.open(h.dbPath);
      expect(cli.revoke(keyid, Date.now())).toBe(true);
      cli.close();

      const res = await pending;
      expect(res.status).toBe(410);
      expect(((await res.json()) as { error: string }).error).toBe('revoked');
    } finally {
      h.entra.setTokenDelay(0);
    }
    // And nothing was cached for later either.
    const again = await h.refresh(authid);
    expect(again.status).toBe(410);
  });
});

// ---------------------------------------------------------------------------
describe('a login must finish within 10 minutes', () => {
  it('a callback 11 minutes after POST /login is refused as expired, and the code is never redeemed', async () => {
    h.clock.offsetMs = 0;
    const started = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    expect(started.status).toBe(302);
    const cookie = cookiesOf(started).join('; ');
    const callback = await h.entra.login(started.headers.get('location')!, { username: 'gaps-slow-login' });
    h.entra.resetStats();

    h.clock.offsetMs = 11 * 60_000;
    const res = await h.app(new Request(callback, { headers: { cookie } }));
    h.clock.offsetMs = 0;
    expect(res.status).toBe(400);
    expect(res.headers.get('x-reason')).toMatch(/expired/);
    expect(AUTHID_IN_PAGE.test(await res.text())).toBe(false);
    expect(h.entra.stats().byGrant.authorization_code).toBe(0);
  });
});

// ---------------------------------------------------------------------------
describe('pages: strict CSP, no framing, no referrer', () => {
  const expectPageHeaders = (res: Response) => {
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/(^|; )default-src 'none'(;|$)/);
    expect(csp).toMatch(/(^|; )frame-ancestors 'none'(;|$)/);
    expect(csp).toMatch(/(^|; )script-src 'nonce-[A-Za-z0-9+/=]+'(;|$)/);
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cache-control')).toBe('no-store');
  };

  it('the start page, the revoke page and the page that shows the AuthID', async () => {
    h.clock.offsetMs = 0;
    expectPageHeaders(await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2`)));
    expectPageHeaders(await h.app(new Request(`${PUBLIC_URL}/revoke`)));

    const started = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE })));
    const callback = await h.entra.login(started.headers.get('location')!, { username: 'gaps-headers' });
    const done = await h.app(new Request(callback, { headers: { cookie: cookiesOf(started).join('; ') } }));
    expect(done.status).toBe(200);
    expect(AUTHID_IN_PAGE.test(await done.text())).toBe(true);
    expectPageHeaders(done);
  });
});

// ---------------------------------------------------------------------------
describe('legacy /fetch tokens', () => {
  const ALLOWED = { origin: 'http://localhost:8200' };

  /** Duplicati's page opens the start page with `token`; the login is finished in that browser. */
  async function loginWithFetchToken(token: string, opts: { sendFetchCookie: boolean }): Promise<string> {
    h.clock.offsetMs = 0;
    const start = await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2&token=${token}`, { headers: ALLOWED }));
    expect(start.status).toBe(200);
    const fetchCookies = cookiesOf(start);
    expect(fetchCookies.length).toBe(1);
    const begun = await h.app(
      new Request(
        `${PUBLIC_URL}/login`,
        form({ id: 'onedrivev2', passcode: PASSCODE, token }, opts.sendFetchCookie ? { cookie: fetchCookies.join('; ') } : {}),
      ),
    );
    expect(begun.status).toBe(302);
    const callback = await h.entra.login(begun.headers.get('location')!, { username: `gaps-fetch-${token}` });
    const cookies = [...(opts.sendFetchCookie ? fetchCookies : []), ...cookiesOf(begun)];
    const done = await h.app(new Request(callback, { headers: { cookie: cookies.join('; ') } }));
    expect(done.status).toBe(200);
    return AUTHID_IN_PAGE.exec(await done.text())![1]!;
  }

  const poll = async (token: string) => (await h.app(new Request(`${PUBLIC_URL}/fetch?token=${token}`))).json() as Promise<Record<string, string>>;

  it('a ready token hands out the AuthID for 30 seconds, then is gone', async () => {
    const early = await loginWithFetchToken('gaps-ready-early-0001', { sendFetchCookie: true });
    h.clock.offsetMs = 20_000;
    expect(await poll('gaps-ready-early-0001')).toEqual({ authid: early });

    await loginWithFetchToken('gaps-ready-late-00001', { sendFetchCookie: true });
    h.clock.offsetMs = 31_000;
    expect(await poll('gaps-ready-late-00001')).toEqual({ error: 'No such entry' });
    h.clock.offsetMs = 0;
  });

  it('a login posted with a registered token but without the fetch cookie of the page that registered it never fills the token', async () => {
    // Anyone can register a token with an allowed Origin from outside a browser; the cookie it got is not the owner's.
    const authid = await loginWithFetchToken('gaps-nocookie-000001', { sendFetchCookie: false });
    const body = await poll('gaps-nocookie-000001');
    expect(JSON.stringify(body)).not.toContain(authid);
    expect(body).toEqual({ wait: 'Not ready' });
  });
});

// ---------------------------------------------------------------------------
describe('a cross-site form identified only by its Origin header (no Sec-Fetch-Site)', () => {
  it('is refused before it counts as a wrong passcode, so it cannot lock the owner out', async () => {
    const client = { address: '203.0.113.77' };
    for (let i = 0; i < 7; i++) {
      const res = await h.app(
        new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: `wrong-guess-${i}` }, { origin: 'https://evil.example' })),
        client,
      );
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
    }
    const own = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE }, { origin: PUBLIC_URL })), client);
    expect(own.status).toBe(302);
  });
});

// ---------------------------------------------------------------------------
describe('broker_refresh_total outcomes', () => {
  it('cache_hit, refreshed, stale_served, login_required, app_misconfigured, upstream_error and rejected are told apart', async () => {
    const outcomes: string[] = [];
    const app = createApp({ broker: h.broker, version: 'test', now: () => Date.now() + h.clock.offsetMs, onRefresh: (o) => outcomes.push(o) });
    const refresh = async (authid: string) => (await app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': authid } }))).status;
    const last = () => outcomes[outcomes.length - 1];

    let c = await h.connect({ username: 'gaps-metrics-1' });
    expect(await refresh(c.authid)).toBe(200);
    expect(last()).toBe('cache_hit');
    expireCachedToken(h);
    expect(await refresh(c.authid)).toBe(200);
    expect(last()).toBe('refreshed');

    // Two minutes left: a refresh is due; Microsoft fails; the still-valid token is served.
    c = await h.connect({ username: 'gaps-metrics-2' });
    h.clock.offsetMs = 3600_000 - 120_000;
    h.entra.failNext(1, { status: 503, body: { error: 'temporarily_unavailable', error_codes: [90000] } });
    expect(await refresh(c.authid)).toBe(200);
    expect(last()).toBe('stale_served');

    c = await h.connect({ username: 'gaps-metrics-3' });
    expireCachedToken(h);
    h.entra.failNext(1, { status: 503, body: { error: 'temporarily_unavailable', error_codes: [90000] } });
    expect(await refresh(c.authid)).toBe(502);
    expect(last()).toBe('upstream_error');
    h.entra.failNext(1, { status: 401, body: { error: 'invalid_client', error_codes: [7000222] } });
    expect(await refresh(c.authid)).toBe(502);
    expect(last()).toBe('app_misconfigured');
    h.entra.failNext(1, { status: 400, body: { error: 'invalid_grant', error_codes: [70008] } });
    expect(await refresh(c.authid)).toBe(400);
    expect(last()).toBe('login_required');

    expect(await refresh('not-an-authid')).toBe(400);
    expect(last()).toBe('rejected');
    expect(outcomes).toEqual(['cache_hit', 'refreshed', 'stale_served', 'upstream_error', 'app_misconfigured', 'login_required', 'rejected']);
    h.clock.offsetMs = 0;
  });
});

// ---------------------------------------------------------------------------
describe("serve's request log names the error code", () => {
  let entra: Entra;
  beforeAll(async () => {
    entra = await startEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
  });
  afterAll(async () => {
    await entra?.close();
  });

  it('a refused /refresh is logged with its status and error code (text and JSON)', async () => {
    const { home } = await configuredHome(entra, 'gaps-passcode-1234');

    const text = await serve(home);
    expect((await fetch(`${text.url}/refresh`)).status).toBe(400);
    expect((await fetch(`${text.url}/refresh`, { headers: { 'x-authid': 'nonsense' } })).status).toBe(400);
    await text.stop();
    expect(text.stderr()).toMatch(/request method=GET route=\/refresh status=400 .*error=authid_missing/);
    expect(text.stderr()).toMatch(/request method=GET route=\/refresh status=400 .*error=authid_malformed/);

    const json = await serve(home, {}, ['--log-format', 'json']);
    expect((await fetch(`${json.url}/nowhere`)).status).toBe(404);
    await json.stop();
    const requests = json
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === 'request');
    expect(requests).toContainEqual(expect.objectContaining({ route: 'other', status: 404, error: 'not_found' }));
  });
});
