/**
 * Legacy Duplicati fetch tokens (`/?token=` … `/fetch?token=`): the table on its
 * own with a small capacity and a clock the test moves, then through the app
 * in-process, where only the browser that registered a token may fill it.
 */
import { describe, expect, it } from 'vitest';
import { FETCH_TOKEN_READY_TTL_MS, FETCH_TOKEN_TTL_MS, type FetchState, FetchTokens } from '../src/broker/fetch-tokens.ts';
import { BrokerError } from '../src/errors.ts';
import { SqliteStore } from '../src/store/store.ts';
import { jsonError } from '../src/http/respond.ts';
import { authidInPage } from './support/authid.ts';
import { PUBLIC_URL } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';
import { cookiesOf, loginForm } from './support/http.ts';

/** A store of its own for a table on its own (transients live in memory on SQLite). */
const memoryStore = () => {
  const store = SqliteStore.open(':memory:');
  return () => store;
};

/** For the tests through the app (the table's own tests do not use it). */
const h = useHarness();

describe('a full fetch-token table', () => {
  it('refuses a new token with 429 and Retry-After, and never pushes out a waiting one', async () => {
    let t = 1_000_000;
    const table = new FetchTokens(memoryStore(), () => t, 3);
    for (let i = 1; i <= 3; i++) {
      expect(await table.register(`waiting-token-${i}`, { address: `192.0.2.${i}` })).toBe(true);
      t += 10_000;
    }
    let refused: unknown;
    try {
      await table.register('newcomer-token', { address: '192.0.2.99' });
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(BrokerError);
    const res = jsonError(refused);
    expect(res.status).toBe(429);
    // The oldest entry ends FETCH_TOKEN_TTL_MS after it was made, 30 s ago.
    expect(Number(res.headers.get('retry-after'))).toBe((FETCH_TOKEN_TTL_MS - 30_000) / 1000);

    // Every waiting token is still there and can still receive its AuthID.
    for (let i = 1; i <= 3; i++) {
      expect(await table.take(`waiting-token-${i}`)).toEqual({ kind: 'wait' });
      expect(await table.attach(`waiting-token-${i}`, `authid-${i}`)).toBe(true);
    }
    expect(await table.take('waiting-token-1')).toEqual({ kind: 'ready', authid: 'authid-1' });

    // A place freed (a token read) is a place for a newcomer.
    expect(await table.register('newcomer-token', { address: '192.0.2.99' })).toBe(true);
  });

  it('expired tokens make room', async () => {
    let t = 0;
    const table = new FetchTokens(memoryStore(), () => t, 2);
    expect(await table.register('first-token-1', { address: '192.0.2.1' })).toBe(true);
    expect(await table.register('first-token-2', { address: '192.0.2.2' })).toBe(true);
    t += FETCH_TOKEN_TTL_MS + 1;
    expect(await table.register('later-token-3', { address: '192.0.2.3' })).toBe(true);
    expect(await table.take('first-token-1')).toEqual({ kind: 'unknown' });
  });
});

describe('the fetch-token rules, on a fake clock', () => {
  it.each([
    ['abcdefghi', true],
    ['a'.repeat(128), true],
    ['Az09._~-Az', true],
    ['abcdefgh', false],
    ['a'.repeat(129), false],
    ['has space1', false],
    ['slash/token', false],
    ['percent%41token', false],
    ['', false],
    [null, false],
    [undefined, false],
  ])('valid(%j) → %s', (token, valid) => {
    expect(FetchTokens.valid(token)).toBe(valid);
  });

  type Op = readonly ['at', number] | readonly ['register' | 'take', string, string?] | readonly ['attach', string, string];
  /** Runs `ops` against a table of capacity 4 on a clock the ops move; what each returned. */
  async function play(ops: readonly Op[]): Promise<unknown[]> {
    let t = 0;
    const table = new FetchTokens(memoryStore(), () => t, 4);
    const out: unknown[] = [];
    for (const op of ops) {
      switch (op[0]) {
        case 'at':
          t = op[1];
          out.push(t);
          break;
        case 'register':
          out.push(await table.register(op[1], { address: op[2] ?? '192.0.2.1' }));
          break;
        case 'attach':
          out.push(await table.attach(op[1], op[2]));
          break;
        default: // take
          out.push(await table.take(op[1]));
      }
    }
    return out;
  }
  const WAIT: FetchState = { kind: 'wait' };
  const UNKNOWN: FetchState = { kind: 'unknown' };
  const ready = (authid: string): FetchState => ({ kind: 'ready', authid });
  const T = 'fetch-token-1';

  it.each<[string, Op[], unknown[]]>([
    [
      'registered, waiting, attached, read once',
      [
        ['register', T],
        ['take', T],
        ['attach', T, 'A'],
        ['take', T],
        ['take', T],
      ],
      [true, WAIT, true, ready('A'), UNKNOWN],
    ],
    [
      'an unknown token',
      [
        ['take', T],
        ['attach', T, 'A'],
      ],
      [UNKNOWN, false],
    ],
    ['a missing token', [['take', '']], [{ kind: 'missing' }]],
    [
      'a malformed token is never registered',
      [
        ['register', 'short'],
        ['take', 'short'],
      ],
      [false, UNKNOWN],
    ],
    [
      'the same page reloaded: registered again while waiting',
      [
        ['register', T],
        ['register', T],
      ],
      [true, true],
    ],
    [
      'not once it holds an AuthID',
      [
        ['register', T],
        ['attach', T, 'A'],
        ['register', T],
        ['take', T],
      ],
      [true, true, false, ready('A')],
    ],
    [
      'attached only once',
      [
        ['register', T],
        ['attach', T, 'A'],
        ['attach', T, 'B'],
        ['take', T],
      ],
      [true, true, false, ready('A')],
    ],
    [
      'a waiting token ends after its TTL',
      [
        ['register', T],
        ['at', FETCH_TOKEN_TTL_MS - 1],
        ['take', T],
        ['at', FETCH_TOKEN_TTL_MS],
        ['take', T],
      ],
      [true, FETCH_TOKEN_TTL_MS - 1, WAIT, FETCH_TOKEN_TTL_MS, UNKNOWN],
    ],
    [
      'and cannot be attached then',
      [
        ['register', T],
        ['at', FETCH_TOKEN_TTL_MS],
        ['attach', T, 'A'],
      ],
      [true, FETCH_TOKEN_TTL_MS, false],
    ],
    [
      'an attached token lives for the ready TTL from the attach, not the register',
      [
        ['register', T],
        ['at', 1000],
        ['attach', T, 'A'],
        ['at', 1000 + FETCH_TOKEN_READY_TTL_MS - 1],
        ['take', T],
      ],
      [true, 1000, true, 1000 + FETCH_TOKEN_READY_TTL_MS - 1, ready('A')],
    ],
    [
      'and is gone at its end',
      [
        ['register', T],
        ['at', 1000],
        ['attach', T, 'A'],
        ['at', 1000 + FETCH_TOKEN_READY_TTL_MS],
        ['take', T],
      ],
      [true, 1000, true, 1000 + FETCH_TOKEN_READY_TTL_MS, UNKNOWN],
    ],
    [
      'an expired token can be registered afresh',
      [
        ['register', T],
        ['at', FETCH_TOKEN_TTL_MS],
        ['register', T],
        ['take', T],
      ],
      [true, FETCH_TOKEN_TTL_MS, true, WAIT],
    ],
  ])('%s', async (_, ops, expected) => {
    expect(await play(ops)).toEqual(expected);
  });

  it('one client registers at most 30 tokens in a TTL; another is not held up', async () => {
    let t = 0;
    const table = new FetchTokens(memoryStore(), () => t, 100);
    const results: boolean[] = [];
    for (let i = 0; i < 31; i++) results.push(await table.register(`one-client-${String(i).padStart(3, '0')}`, { address: '198.51.100.7' }));
    expect(results.filter(Boolean).length).toBe(30);
    expect(results.at(-1)).toBe(false);
    expect(await table.register('other-client-001', { address: '198.51.100.8' })).toBe(true);
    t = FETCH_TOKEN_TTL_MS;
    expect(await table.register('one-client-later', { address: '198.51.100.7' })).toBe(true);
  });

  it("the cookie value is bound to its token, and matches only that token's", () => {
    const cookie = FetchTokens.cookieValue('fetch-token-1');
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(FetchTokens.cookieMatches('fetch-token-1', cookie)).toBe(true);
    expect(FetchTokens.cookieMatches('fetch-token-2', cookie)).toBe(false);
    expect(FetchTokens.cookieMatches('fetch-token-1', undefined)).toBe(false);
    expect(FetchTokens.cookieMatches('fetch-token-1', '')).toBe(false);
    expect(FetchTokens.cookieMatches('short', FetchTokens.cookieValue('short'))).toBe(false);
  });
});

// Found by mutation testing.
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
      new Request(`${PUBLIC_URL}/login`, loginForm({ token, headers: opts.sendFetchCookie ? { cookie: fetchCookies.join('; ') } : {} })),
    );
    expect(begun.status).toBe(302);
    const callback = await h.entra.login(begun.headers.get('location')!, { username: `gaps-fetch-${token}` });
    const cookies = [...(opts.sendFetchCookie ? fetchCookies : []), ...cookiesOf(begun)];
    const done = await h.app(new Request(callback, { headers: { cookie: cookies.join('; ') } }));
    expect(done.status).toBe(200);
    return authidInPage(await done.text());
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

// Found by review.
describe("a legacy fetch token only reaches the browser that Duplicati's page opened", () => {
  it("an attacker who planted ?token= in a link gets the owner's AuthID from /fetch without any of the login browser's cookies", async () => {
    // The attacker picks a token and registers it, claiming Duplicati's origin (anyone can, outside a browser).
    const token = 'attacker-chosen-token-0001';
    const registered = await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2&token=${token}`, { headers: { origin: 'http://localhost:8200' } }));
    expect(await registered.text()).toContain(`name="token" value="${token}"`);
    expect(registered.headers.get('set-cookie')).toMatch(/^broker_fetch=/);
    expect(await (await h.app(new Request(`${PUBLIC_URL}/fetch?token=${token}`))).json()).toEqual({ wait: 'Not ready' });

    // The owner follows the attacker's link to their own broker and connects as usual; the form
    // carries the token, but the owner's browser never got the fetch cookie that registered it.
    const page = await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2&token=${token}`));
    const ownerCookies = cookiesOf(page);
    expect(ownerCookies).toEqual([]);
    const begun = await h.app(new Request(`${PUBLIC_URL}/login`, loginForm({ token })));
    expect(begun.status).toBe(302);
    ownerCookies.push(...cookiesOf(begun));
    const callback = await h.entra.login(begun.headers.get('location')!);
    const done = await h.app(new Request(callback, { headers: { cookie: ownerCookies.join('; ') } }));
    expect(done.status).toBe(200);
    const authid = authidInPage(await done.text());

    // The attacker polls /fetch from their own machine: the token is still registered and empty.
    const stolen = await h.app(new Request(`${PUBLIC_URL}/fetch?token=${token}`));
    const body = await stolen.text();
    // (Compared without printing: a failure message must not show the AuthID.)
    expect(body.includes(authid), 'the AuthID reached /fetch').toBe(false);
    expect(JSON.parse(body)).toEqual({ wait: 'Not ready' });
  });
});
