/**
 * Strangers cannot lock the owner out: guesses from many addresses are slowed,
 * never turned into a refusal of the right passcode; one client is still limited;
 * an IPv6 client is its /64; a cross-site form (by Sec-Fetch-Site, by Origin
 * alone, or from nowhere: `Origin: null`) does not count.
 */
import { describe, expect, it } from 'vitest';
import { checkDelayMs, MAX_CHECK_DELAY_MS } from '../src/broker/passcode.ts';
import { clientKey, FailureLimiter } from '../src/broker/rate-limit.ts';
import { fakeAuthid } from './support/authid.ts';
import { PASSCODE, PUBLIC_URL } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';
import { loginForm } from './support/http.ts';

const login = (passcode: string, headers: Record<string, string> = {}): Request => new Request(`${PUBLIC_URL}/login`, loginForm({ passcode, headers }));

describe('fifty wrong passcodes from fifty addresses', () => {
  /** The pauses the broker asked for before checks: recorded, not waited (no test waits minutes). */
  const pauses: number[] = [];
  const h = useHarness({
    sleep: async (ms) => {
      pauses.push(ms);
    },
  });

  it('do not lock the owner out: the right passcode from a 51st address starts the login; the guesses were spaced out more and more', async () => {
    for (let a = 1; a <= 50; a++) {
      const res = await h.app(login(`stranger-guess-${a}`), { address: `198.51.100.${a}` });
      expect(res.status, `guess ${a}`).toBe(403);
    }
    const owner = await h.app(login(PASSCODE), { address: '203.0.113.51' });
    expect(owner.status).toBe(302);
    expect(owner.headers.get('location')).toContain('/oauth2/v2.0/authorize');

    // Guessing got slower with every wrong passcode, up to the cap, and the owner waited too (not refused).
    expect(pauses.length).toBeGreaterThan(30);
    expect(pauses).toEqual([...pauses].sort((x, y) => x - y));
    expect(pauses.at(-1)).toBe(MAX_CHECK_DELAY_MS);
  }, 60_000);

  it('one address is still limited: its 6th wrong passcode gets 429 with Retry-After', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 6; i++) {
      last = await h.app(login(`one-address-guess-${i}`), { address: '192.0.2.200' });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([403, 403, 403, 403, 403, 429]);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
  }, 60_000);

  it('a guess from a new address after the global count is high is still checked (403), not refused', async () => {
    const res = await h.app(login('yet-another-guess'), { address: '198.51.100.222' });
    expect(res.status).toBe(403);
  }, 60_000);
});

describe('the pause before a check', () => {
  it('is none for the first ten wrong passcodes, then grows to its cap', () => {
    expect(checkDelayMs(0)).toBe(0);
    expect(checkDelayMs(9)).toBe(0);
    expect(checkDelayMs(10)).toBeGreaterThan(0);
    expect(checkDelayMs(20)).toBeGreaterThan(checkDelayMs(10));
    expect(checkDelayMs(10_000)).toBe(MAX_CHECK_DELAY_MS);
  });
});

describe('an IPv6 client is its /64', () => {
  it('2001:db8:1:2::1 and 2001:db8:1:2::ffff share a bucket; 2001:db8:1:3::1 does not', () => {
    expect(clientKey('2001:db8:1:2::1')).toBe(clientKey('2001:db8:1:2::ffff'));
    expect(clientKey('2001:0db8:0001:0002:0000:0000:0000:0001')).toBe(clientKey('2001:db8:1:2::1'));
    expect(clientKey('2001:db8:1:3::1')).not.toBe(clientKey('2001:db8:1:2::1'));
    expect(clientKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientKey('192.0.2.7')).not.toBe(clientKey('192.0.2.8'));

    const limiter = new FailureLimiter(2, 60_000, () => 0);
    limiter.fail('2001:db8:1:2::1');
    limiter.fail('2001:db8:1:2::ffff');
    expect(limiter.retryAfter('2001:db8:1:2::abcd')).toBeGreaterThan(0);
    expect(limiter.retryAfter('2001:db8:1:3::1')).toBe(0);
  });

  describe('in the passcode limit and the failed-AuthID limit', () => {
    const h = useHarness({ sleep: async () => {} });

    it('wrong passcodes from five addresses of one /64: the sixth, from yet another, gets 429', async () => {
      for (let i = 1; i <= 5; i++) expect((await h.app(login(`v6-guess-${i}`), { address: `2001:db8:1:2::${i}` })).status).toBe(403);
      expect((await h.app(login('v6-guess-6'), { address: '2001:db8:1:2::ffff' })).status).toBe(429);
      expect((await h.app(login(PASSCODE), { address: '2001:db8:1:3::1' })).status).toBe(302);
    });

    it('failed AuthIDs from many addresses of one /64 are limited together', async () => {
      const bogus = fakeAuthid();
      const statuses: number[] = [];
      for (let i = 1; i <= 21; i++) {
        const res = await h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': bogus } }), { address: `2001:db8:9:9::${i.toString(16)}` });
        statuses.push(res.status);
      }
      expect(
        statuses.slice(0, 19).every((s) => s === 401),
        String(statuses),
      ).toBe(true);
      expect(statuses.at(-1)).toBe(429);
      const other = await h.app(new Request(`${PUBLIC_URL}/refresh`, { headers: { 'x-authid': bogus } }), { address: '2001:db8:9:a::1' });
      expect(other.status).toBe(401);
    });
  });
});

describe('a form post with `Origin: null` and no Sec-Fetch-Site', () => {
  const h = useHarness({ sleep: async () => {} });

  it('is refused as cross-site before it counts as a wrong passcode', async () => {
    const client = { address: '203.0.113.90' };
    for (let i = 0; i < 7; i++) {
      const res = await h.app(login(`sandboxed-guess-${i}`, { origin: 'null' }), client);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
    }
    // Not even the right passcode passes that way …
    expect((await h.app(login(PASSCODE, { origin: 'null' }), client)).status).toBe(400);
    // … while the browser that says it is on the broker's own page gets in, and nothing was counted.
    expect((await h.app(login(PASSCODE, { origin: 'null', 'sec-fetch-site': 'same-origin' }), client)).status).toBe(302);
  });
});

// Found by mutation testing.
describe('a cross-site form identified only by its Origin header (no Sec-Fetch-Site)', () => {
  const h = useHarness({ sleep: async () => {} });

  it('is refused before it counts as a wrong passcode, so it cannot lock the owner out', async () => {
    const client = { address: '203.0.113.77' };
    for (let i = 0; i < 7; i++) {
      const res = await h.app(login(`wrong-guess-${i}`, { origin: 'https://evil.example' }), client);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
    }
    const own = await h.app(login(PASSCODE, { origin: PUBLIC_URL }), client);
    expect(own.status).toBe(302);
  });
});

// Found by review.
describe('a cross-site form post cannot lock the owner out', () => {
  const h = useHarness({ sleep: async () => {} });

  it("6 cross-site form posts from a page the owner visits do not stop the owner's own login from that browser", async () => {
    const address = '127.0.0.1'; // the owner's browser on the broker's machine (or through `ssh -L`)
    for (let i = 0; i < 6; i++) {
      // What <form method=post action="http://localhost:8080/login"> on any site sends: a simple request, no preflight.
      await h.app(login(`csrf-guess-${i}`, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }), { address });
    }
    const own = await h.app(login(PASSCODE, { origin: PUBLIC_URL, 'sec-fetch-site': 'same-origin' }), { address });
    expect(own.status).toBe(302);
  });
});
