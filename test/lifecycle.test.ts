/**
 * The token lifecycle as its users meet it: Microsoft's errors sorted into
 * "sign in again", "the owner must fix the app" and "try again later"; expiry
 * that can be seen coming; abuse that is slowed without slowing a valid caller;
 * revocation that survives a restart.
 */
import { randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../src/broker/context.ts';
import { listCommand } from '../src/cli/list.ts';
import { processIo, type Io } from '../src/cli/io.ts';
import { LOOPBACK_CALLBACK, configuredHome, connectOverHttp, run, serve, type Served } from './support/binary.ts';
import { expireCachedToken, PASSCODE, PUBLIC_URL, type Harness } from './support/harness.ts';
import { useEntra, useHarness } from './support/hooks.ts';
import { fakeAuthid, fakeKeyid } from './support/authid.ts';
import { loginForm } from './support/http.ts';

const DAY = 86_400_000;
/** Put in every error_description; the broker must never repeat Microsoft's text. */
const DESCRIPTION_MARKER = 'DESCRIPTION-MUST-NOT-LEAK';

/** Microsoft's error body: every answer carries a fresh trace and correlation id, as Entra's do. */
function entraError(error: string, codes: number[] = []): Record<string, unknown> {
  const code = codes[0] ?? 90000;
  return {
    error,
    error_description: `AADSTS${code}: ${DESCRIPTION_MARKER} <script>alert(1)</script> echo of client_id and scope. Trace ID: x`,
    error_codes: codes,
    timestamp: new Date().toISOString(),
    trace_id: randomUUID(),
    correlation_id: randomUUID(),
  };
}

interface LogLine {
  level: 'info' | 'warn';
  event: string;
  fields: Record<string, unknown>;
}

function capturingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (event, fields = {}) => lines.push({ level: 'info', event, fields }),
    warn: (event, fields = {}) => lines.push({ level: 'warn', event, fields }),
  };
}

async function errorOf(res: Response): Promise<{ status: number; reason: string; body: string; json: { error?: string; error_description?: string } }> {
  const body = await res.text();
  let json = {};
  try {
    json = JSON.parse(body);
  } catch {}
  return { status: res.status, reason: res.headers.get('x-reason') ?? '', body, json };
}

function expectNoDescription(e: { reason: string; body: string }): void {
  expect(e.reason).not.toContain(DESCRIPTION_MARKER);
  expect(e.body).not.toContain(DESCRIPTION_MARKER);
  expect(e.body).not.toContain('<script>');
}

/** `broker list --json`, run in-process on the harness's store folder. */
async function listJson(h: Harness): Promise<{ rows: { keyid: string; state: string }[]; stderr: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { ...processIo(), out: (t) => void out.push(t), err: (t) => void err.push(t), env: {}, isTTY: false };
  await listCommand(dirname(h.dbPath), io, { json: true }, () => Date.now() + h.clock.offsetMs);
  return { rows: JSON.parse(out.join('\n')), stderr: err };
}

// ---------------------------------------------------------------------------
// In-process: the real app function, store and provider, a movable clock.

// One attempt may take 1 s, all attempts of one refresh 3 s: a hung provider costs seconds, not minutes.
const TIMEOUT_MS = 1000;
const BUDGET_MS = 3000;

const log = capturingLogger();
const h = useHarness({ config: { upstreamTimeoutMs: TIMEOUT_MS, upstreamBudgetMs: BUDGET_MS }, log });

describe('Microsoft asks for a new sign-in', () => {
  const cases: [string, number[], RegExp][] = [
    ['invalid_grant', [70000], /the connection is no longer valid/],
    ['invalid_grant', [70008], /the grant was revoked or has expired/],
    ['invalid_grant', [700082], /not used for 90 days/],
    ['invalid_grant', [50173], /the grant was revoked or has expired/],
    ['invalid_grant', [70043], /sign-in frequency policy/],
    ['interaction_required', [50076], /sign in again/],
    ['consent_required', [65001], /consent for the app was removed/],
  ];
  it.each(cases)('%s %j → 400 login_required, state recorded, Microsoft not called again', async (error, codes, why) => {
    const c = await h.connect();
    expireCachedToken(h);
    h.entra.resetStats();
    h.entra.failNext(1, { status: 400, body: entraError(error, codes) });
    const e = await errorOf(await h.refresh(c.authid));
    expect(e.status).toBe(400);
    expect(e.json.error).toBe('login_required');
    expect(e.reason).toMatch(why);
    expect(e.reason).toContain(`Create a new AuthID at ${PUBLIC_URL}/`);
    expectNoDescription(e);
    expect(h.entra.stats().tokenRequests).toBe(1);

    expect((await h.store.get(c.keyid))!.state).toBe('login_required');
    const listed = await listJson(h);
    expect(listed.rows.find((r) => r.keyid === c.keyid)?.state).toBe('login_required');
    expect(listed.stderr.join('\n')).toContain(`${c.keyid}: Microsoft asks for a new sign-in`);

    // Later requests are answered from the store alone.
    for (let i = 0; i < 3; i++) {
      const again = await errorOf(await h.refresh(c.authid));
      expect(again.status).toBe(400);
      expect(again.json.error).toBe('login_required');
      expect(again.reason).toContain(`Create a new AuthID at ${PUBLIC_URL}/`);
    }
    expect(h.entra.stats().tokenRequests).toBe(1);
  });
});

describe('the app is misconfigured', () => {
  const cases: [string, number[], RegExp][] = [
    ['invalid_client', [7000215], /the app secret is wrong/],
    ['invalid_client', [7000222], /the app secret has expired/],
    ['unauthorized_client', [700016], /the client id is not known/],
  ];
  it.each(cases)('%s %j → 502 app_misconfigured naming the cause, no retries, the connection stays usable', async (error, codes, why) => {
    const c = await h.connect();
    expireCachedToken(h);
    h.entra.resetStats();
    h.entra.failNext(1, { status: 401, body: entraError(error, codes) });
    const e = await errorOf(await h.refresh(c.authid));
    expect(e.status).toBe(502);
    expect(e.json.error).toBe('app_misconfigured');
    expect(e.reason).toMatch(why);
    expect(e.reason).toMatch(/owner must fix the app registration/);
    expectNoDescription(e);
    // Not transient: retrying cannot help, so it was asked once.
    expect(h.entra.stats().tokenRequests).toBe(1);
    // Not the user's fault: the connection is not marked, and works once the app is fixed.
    expect((await h.store.get(c.keyid))!.state).toBe('active');
    const ok = await h.refresh(c.authid);
    expect(ok.status).toBe(200);
    expect(h.entra.stats().reuseDetected).toBe(0);
  });

  it('logs app.misconfigured once for repeated identical failures (each with its own trace id, as Microsoft sends)', async () => {
    const c = await h.connect();
    expireCachedToken(h);
    for (let i = 0; i < 4; i++) {
      // A fresh body per answer: Entra's trace_id and correlation_id differ every time.
      h.entra.failNext(1, { status: 401, body: entraError('invalid_client', [7000222]) });
      const e = await errorOf(await h.refresh(c.authid));
      expect(e.status).toBe(502);
    }
    // Counted over the whole log: the case above met the same cause already, and that was its one line.
    const lines = log.lines.filter((l) => l.event === 'app.misconfigured' && /secret has expired/.test(String(l.fields.reason)));
    expect(lines.map((l) => String(l.fields.reason).replace(/trace id [0-9a-f-]+/, 'trace id …'))).toHaveLength(1);
  });
});

describe('Microsoft fails for a while', () => {
  /** Connects and moves the clock so the token has `leftMs` of life (a refresh is due at 5 minutes). */
  async function connectedWithLife(leftMs: number): Promise<{ authid: string; keyid: string; token: string }> {
    const c = await h.connect();
    const token = ((await (await h.refresh(c.authid)).json()) as { access_token: string }).access_token;
    h.clock.offsetMs = 3600_000 - leftMs;
    h.entra.resetStats();
    return { ...c, token };
  }

  it.each([
    ['503 temporarily_unavailable', { status: 503, body: entraError('temporarily_unavailable', [90000]), headers: { 'retry-after': '1' } }],
    ['500 with a non-JSON body', { status: 500, body: `Internal Server Error ${DESCRIPTION_MARKER}` }],
  ])('%s twice, then OK: retried within the budget → 200 after 3 token requests', async (_name, failure) => {
    const c = await connectedWithLife(10_000);
    h.entra.failNext(2, failure);
    const res = await h.refresh(c.authid);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; expires: number };
    expect(body.access_token).not.toBe(c.token);
    expect(h.entra.stats().tokenRequests).toBe(3);
    expect(h.entra.stats().byGrant.refresh_token).toBe(3);
    expect(h.entra.stats().reuseDetected).toBe(0);
  });

  it('a hung token endpoint times out and is retried → 200 once it answers again', async () => {
    const c = await connectedWithLife(10_000);
    h.entra.failNext(1, { hang: true });
    const res = await h.refresh(c.authid);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { access_token: string }).access_token).not.toBe(c.token);
    expect(h.entra.stats().tokenRequests).toBe(2);
    expect(h.entra.stats().reuseDetected).toBe(0);
  });

  // Attempts that fit the budget with the broker's back-off (250 ms, 1 s, 3 s): three fast
  // failures, or two hangs (each cut at 0.8 × the per-call timeout while waiting for headers).
  it.each([
    ['503s', 3, { status: 503, body: entraError('temporarily_unavailable', [90000]) }],
    ['a hang', 2, { hang: true }],
  ])('%s without recovery (%i attempts), the still-valid token (>35 s left) is served', async (_name, attempts, failure) => {
    const c = await connectedWithLife(120_000);
    h.entra.failNext(attempts, failure);
    const res = await h.refresh(c.authid);
    const stats = h.entra.stats();
    // Canned failures the broker did not use would hit the next test.
    h.entra.failNext(0, {});
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; expires: number };
    expect(body.access_token).toBe(c.token);
    expect(body.expires).toBeGreaterThan(35);
    expect(body.expires).toBeLessThanOrEqual(120);
    expect(stats.tokenRequests).toBeGreaterThanOrEqual(2);
    expect(log.lines.some((l) => l.event === 'connection.served_stale')).toBe(true);
  });

  it.each([
    ['503s', 502, 'upstream_error', 3, { status: 503, body: entraError('temporarily_unavailable', [90000]) }],
    ['500s', 502, 'upstream_error', 3, { status: 500, body: 'oops' }],
    ['a hang', 504, 'upstream_timeout', 2, { hang: true }],
  ])('%s without recovery and no token worth serving → %i %s, saying to try again later (never 503)', async (_name, status, code, attempts, failure) => {
    const c = await connectedWithLife(20_000);
    h.entra.failNext(attempts, failure);
    const e = await errorOf(await h.refresh(c.authid));
    const stats = h.entra.stats();
    // Canned failures the broker did not use would hit the next test.
    h.entra.failNext(0, {});
    expect(e.status).toBe(status);
    expect(e.status).not.toBe(503);
    expect(e.json.error).toBe(code);
    expect(e.reason).toMatch(/try again later/i);
    expectNoDescription(e);
    expect(stats.tokenRequests).toBeGreaterThanOrEqual(2);
    // Nothing was lost: once Microsoft is back the same connection refreshes.
    expect((await h.store.get(c.keyid))!.state).toBe('active');
    const ok = await h.refresh(c.authid);
    expect(ok.status).toBe(200);
    expect(h.entra.stats().reuseDetected).toBe(0);
  });
});

describe('GET /status: expiry you can see coming', () => {
  const status = (authid: string) => h.app(new Request(`${PUBLIC_URL}/status`, { headers: { 'x-authid': authid } }));

  it('shows state, service, dates, the idle expiry and the account name to the holder', async () => {
    const c = await h.connect({ username: 'status-user' });
    const t0 = Date.now();
    expect((await h.refresh(c.authid)).status).toBe(200);
    expireCachedToken(h);
    expect((await h.refresh(c.authid)).status).toBe(200);
    const res = await status(c.authid);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const s = (await res.json()) as Record<string, unknown> & { account: Record<string, unknown>; warnings: string[] };
    expect(s).toMatchObject({ keyid: c.keyid, service: 'onedrivev2', state: 'active', warnings: [] });
    expect(s.account.username).toBe('status-user@outlook.com');
    const created = Date.parse(s.created_at as string);
    const lastRefresh = Date.parse(s.last_refresh_at as string);
    expect(Math.abs(created - t0)).toBeLessThan(60_000);
    expect(lastRefresh - created).toBeGreaterThanOrEqual(2 * 3600_000 - 60_000);
    expect(Date.parse(s.last_used_at as string)).toBeGreaterThanOrEqual(created);
    expect(Date.parse(s.idle_expires_at as string)).toBe(lastRefresh + 90 * DAY);
  });

  it('a wrong secret gets the generic 401, without the account name', async () => {
    const c = await h.connect({ username: 'status-private' });
    const secret = c.authid.split(':')[1]!;
    const wrong = `${c.keyid}:${secret.startsWith('a') ? 'b' : 'a'}${secret.slice(1)}`;
    const unknown = fakeAuthid(fakeKeyid(), secret);
    const [a, b] = await Promise.all([status(wrong).then(errorOf), status(unknown).then(errorOf)]);
    expect(a.status).toBe(401);
    expect(a.json.error).toBe('invalid_authid');
    expect(a).toEqual(b);
    expect(a.body).not.toContain('status-private');
  });

  it('warns after 60 idle days, with the date Microsoft ends the connection', async () => {
    const c = await h.connect();
    const created = Date.now();
    h.clock.offsetMs = 59 * DAY;
    expect(((await (await status(c.authid)).json()) as { warnings: string[] }).warnings).toEqual([]);
    h.clock.offsetMs = 61 * DAY;
    const s = (await (await status(c.authid)).json()) as { warnings: string[]; idle_expires_at: string };
    const end = new Date(Date.parse(s.idle_expires_at)).toISOString().slice(0, 10);
    expect(Math.abs(Date.parse(s.idle_expires_at) - (created + 90 * DAY))).toBeLessThan(60_000);
    expect(s.warnings).toEqual([expect.stringMatching(new RegExp(`Not refreshed for 61 days.*${end}`))]);
    // `broker list` says the same on stderr.
    expect((await listJson(h)).stderr.join('\n')).toMatch(new RegExp(`${c.keyid}: Not refreshed for 61 days`));
    h.clock.offsetMs = 0;
  });
});

describe('abuse is slowed, valid callers are not', () => {
  it('25 failed AuthID attempts from one address → 429 with Retry-After; a valid AuthID from it still gets 200', async () => {
    const c = await h.connect();
    const address = '192.0.2.25';
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 25; i++) {
      const bad = i % 3 === 0 ? 'bk1:nothing' : fakeAuthid(fakeKeyid('b'), `${'c'.repeat(55)}${'defg'[i % 4]}`);
      last = await h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': bad } }), { address });
      statuses.push(last.status);
    }
    expect(statuses[0]).toBe(400);
    expect(statuses[1]).toBe(401);
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(5);
    const retryAfter = Number(last!.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(300);
    expect(last!.headers.get('x-reason')).toMatch(/Too many failed AuthID attempts/);

    // The holder of a valid AuthID on the same address is neither refused nor slowed.
    const ok = await h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': c.authid } }), { address });
    expect(ok.status).toBe(200);
    const st = await h.app(new Request(`${PUBLIC_URL}/status`, { headers: { 'x-authid': c.authid } }), { address });
    expect(st.status).toBe(200);
    // Another address is not affected.
    const other = await h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': fakeAuthid(fakeKeyid('b'), 'c'.repeat(56)) } }), {
      address: '192.0.2.26',
    });
    expect(other.status).toBe(401);
  });

  it('6 wrong passcodes from one address → 429 with Retry-After on the start page POST /login', async () => {
    const address = '192.0.2.66';
    const post = (passcode: string) =>
      h.app(
        new Request(`${PUBLIC_URL}/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
          body: new URLSearchParams({ id: 'onedrivev2', passcode }),
        }),
        { address },
      );
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 6; i++) {
      last = await post(`wrong-passcode-${i}`);
      statuses.push(last.status);
    }
    expect(statuses.slice(0, 5)).toEqual([403, 403, 403, 403, 403]);
    expect(statuses[5]).toBe(429);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(last!.headers.get('location')).toBeNull();
    expect(await last!.text()).toMatch(/Too many wrong passcodes/);
    // Another address with the right passcode still starts a login.
    const fine = await h.app(new Request(`${PUBLIC_URL}/login`, loginForm()), { address: '192.0.2.67' });
    expect(fine.status).toBe(302);
  });

  it('wrong passcodes sent all at once from one address are limited like sequential ones (at most 5 checked)', async () => {
    const address = '192.0.2.77';
    const statuses = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        h
          .app(
            new Request(`${PUBLIC_URL}/login`, {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              body: new URLSearchParams({ id: 'onedrivev2', passcode: `parallel-guess-${i}` }),
            }),
            { address },
          )
          .then((r) => r.status),
      ),
    );
    const checked = statuses.filter((s) => s === 403).length;
    expect(
      statuses.every((s) => s === 403 || s === 429),
      String(statuses),
    ).toBe(true);
    // Each 403 is one Argon2 check of a guess; the limit is 5 per address however the requests are timed.
    expect(checked, `statuses ${statuses.join(',')}`).toBeLessThanOrEqual(5);
  });
});

// ---------------------------------------------------------------------------
// Through the compiled binary: what an owner sees in `serve`'s log and `broker list`.

describe('through the binary', () => {
  const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
  let home: string;
  let served: Served | undefined;
  const secretExpires = new Date(Date.now() + 10 * DAY).toISOString().slice(0, 10);

  beforeAll(async () => {
    ({ home } = await configuredHome(entra, PASSCODE));
    // Running init again adds the secret's expiry and keeps the rest.
    const again = await run(['init', '--non-interactive', '--secret-expires', secretExpires], { BROKER_HOME: home });
    expect(again.code, again.stderr).toBe(0);
    served = await serve(home);
  });
  afterAll(async () => {
    await served?.stop();
  });

  const refresh = (authid: string) => fetch(`${served!.url}/refresh`, { headers: { 'x-authid': authid } });

  it("the app secret expiring within 30 days: in serve's startup log, /healthz and broker list", async () => {
    expect(served!.stderr()).toMatch(/warn app\.secret_expiry warning=The_app_secret_expires_in_(9|10)_days/);
    const health = (await (await fetch(`${served!.url}/healthz`)).json()) as { status: string; warnings: string[] };
    expect(health.status).toBe('ok');
    expect(health.warnings).toEqual([expect.stringContaining(`expires in`)]);
    expect(health.warnings[0]).toContain(secretExpires);
    const list = await run(['list'], { BROKER_HOME: home });
    expect(list.code).toBe(0);
    expect(list.stderr).toMatch(new RegExp(`broker: warning: the app secret expires in (9|10) days \\(${secretExpires}\\)`));
    const json = await run(['list', '--json'], { BROKER_HOME: home });
    expect(JSON.parse(json.stdout)).toBeInstanceOf(Array);
    expect(json.stderr).toContain('broker: warning: the app secret expires');
  });

  it('app misconfigured: 502 naming the cause, and serve logs app.misconfigured once for repeated failures', async () => {
    entra.setAccessTokenTtl(30);
    try {
      const c = await connectOverHttp(served!.url, PASSCODE, entra.login);
      entra.resetStats();
      for (let i = 0; i < 4; i++) {
        // A fresh body per answer: Entra's trace_id and correlation_id differ every time.
        entra.failNext(1, { status: 401, body: entraError('invalid_client', [7000215]) });
        const e = await errorOf(await refresh(c.authid));
        expect(e.status).toBe(502);
        expect(e.json.error).toBe('app_misconfigured');
        expect(e.reason).toMatch(/app secret is wrong \(was the secret ID pasted instead of its Value\?\)/);
        expectNoDescription(e);
      }
      expect(entra.stats().tokenRequests).toBe(4);
      const lines = served!
        .stderr()
        .split('\n')
        .filter((l) => /\bapp\.misconfigured\b/.test(l));
      expect(lines, lines.join('\n')).toHaveLength(1);
      expect(lines[0]).toMatch(/^\S+ warn app\.misconfigured reason=.*secret_is_wrong/);
      expect(served!.stderr()).not.toContain(DESCRIPTION_MARKER);
      // Fixed at Microsoft's end: the same connection works.
      expect((await refresh(c.authid)).status).toBe(200);
      expect(entra.stats().reuseDetected).toBe(0);
    } finally {
      entra.setAccessTokenTtl(3600);
    }
  });

  it('sign-in required: 400 login_required, `broker list --json` shows it, Microsoft is not called again', async () => {
    entra.setAccessTokenTtl(30);
    try {
      const c = await connectOverHttp(served!.url, PASSCODE, entra.login);
      entra.resetStats();
      entra.failNext(1, { status: 400, body: entraError('invalid_grant', [700082]) });
      const e = await errorOf(await refresh(c.authid));
      expect(e.status).toBe(400);
      expect(e.json.error).toBe('login_required');
      expect(e.reason).toContain(`Create a new AuthID at ${served!.url}/`);
      expectNoDescription(e);
      const list = await run(['list', '--json'], { BROKER_HOME: home });
      expect(list.code, list.stderr).toBe(0);
      const rows = JSON.parse(list.stdout) as { keyid: string; state: string; idle_expires_at: string | null }[];
      expect(rows.find((r) => r.keyid === c.keyid)).toMatchObject({ state: 'login_required', idle_expires_at: null });
      const stats = entra.stats();
      for (let i = 0; i < 3; i++) expect((await refresh(c.authid)).status).toBe(400);
      expect(entra.stats()).toEqual(stats);
    } finally {
      entra.setAccessTokenTtl(3600);
    }
  });

  it('revocation is final: after a restart the holder gets 410, a wrong secret 401, and the page names account.microsoft.com', async () => {
    const c = await connectOverHttp(served!.url, PASSCODE, entra.login, { username: 'revoked-user' });
    const token = ((await (await refresh(c.authid)).json()) as { access_token: string }).access_token;
    const r = await fetch(`${served!.url}/revoke`, { method: 'POST', headers: { 'x-authid': c.authid } });
    expect(r.status).toBe(200);
    expect(await served!.stop('SIGTERM')).toBe(0);
    served = await serve(home);

    const holder = await errorOf(await refresh(c.authid));
    expect(holder.status).toBe(410);
    expect(holder.json.error).toBe('revoked');
    expect(holder.body).not.toContain(token);
    const secret = c.authid.split(':')[1]!;
    const wrong = await errorOf(await refresh(`${c.keyid}:${secret.startsWith('a') ? 'b' : 'a'}${secret.slice(1)}`));
    const unknown = await errorOf(await refresh(fakeAuthid(fakeKeyid(), secret)));
    expect(wrong.status).toBe(401);
    expect(wrong).toEqual(unknown);
    // Every way of asking: query, form, bearer, plain text; /status has no account name any more.
    const viaQuery = await fetch(`${served!.url}/refresh?authid=${encodeURIComponent(c.authid)}`, { headers: { accept: 'text/plain' } });
    expect(viaQuery.status).toBe(410);
    expect(await viaQuery.text()).not.toContain(token);
    const viaBearer = await fetch(`${served!.url}/refresh`, { method: 'POST', headers: { authorization: `Bearer ${c.authid}` } });
    expect(viaBearer.status).toBe(410);
    const st = await fetch(`${served!.url}/status`, { headers: { 'x-authid': c.authid } });
    const stText = await st.text();
    expect(stText).not.toContain('revoked-user');
    // The holder still authenticates (the check tag stays), so /status answers 200 and says
    // what happened; the sealed account is gone with the envelope.
    expect(st.status).toBe(200);
    expect(JSON.parse(stText)).toMatchObject({ keyid: c.keyid, state: 'revoked', account: null, idle_expires_at: null });
    const again = await fetch(`${served!.url}/revoke`, { method: 'POST', headers: { 'x-authid': c.authid } });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ revoked: true, already_revoked: true });

    const page = await (await fetch(`${served!.url}/revoke`)).text();
    expect(page).toContain('account.microsoft.com');
    const list = JSON.parse((await run(['list', '--json'], { BROKER_HOME: home })).stdout) as { keyid: string; state: string }[];
    expect(list.find((x) => x.keyid === c.keyid)?.state).toBe('revoked');
  });
});
