/**
 * The limiter's rules on a fake clock (src/broker/rate-limit.ts), as tables: what
 * counts as one client (`clientKey`), and how `FailureLimiter` counts, locks,
 * forgives and forgets. (The limits as the broker applies them: limits.test.ts,
 * lockout.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { clientKey, FailureLimiter } from '../src/broker/rate-limit.ts';

describe('clientKey', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    [' 192.0.2.7 ', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['::FFFF:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:DB8:1:2::1', '2001:db8:1:2::/64'],
    ['[2001:db8:1:2::1]', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['2001:0db8:0001:0002:0000:0000:0000:0001', '2001:db8:1:2::/64'],
    ['2001:db8::', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['2001:db8:1:2:3:4:192.0.2.1', '2001:db8:1:2::/64'],
    ['::192.0.2.1', '0:0:0:0::/64'],
    ['unknown', 'unknown'],
    ['', ''],
  ])('%j → %j', (address, key) => {
    expect(clientKey(address)).toBe(key);
  });
});

/** Runs `steps` against a limiter of `limit` failures per `windowMs`, on a clock the steps move. */
function play(limit: number, windowMs: number, steps: readonly Step[], maxKeys?: number): unknown[] {
  let t = 0;
  const limiter = new FailureLimiter(limit, windowMs, () => t, maxKeys);
  return steps.map(([op, arg]) => {
    switch (op) {
      case 'at':
        t = arg as number;
        return t;
      case 'fail':
        limiter.fail(arg as string);
        return 'failed';
      case 'forgive':
        limiter.forgive(arg as string);
        return 'forgiven';
      case 'retryAfter':
        return limiter.retryAfter(arg as string);
      default: // count
        return limiter.count(arg as string);
    }
  });
}
type Step = readonly ['at', number] | readonly ['fail' | 'forgive' | 'retryAfter' | 'count', string];

const A = '198.51.100.1';
const B = '198.51.100.2';

describe('FailureLimiter', () => {
  it.each<[string, number, number, Step[], unknown[]]>([
    [
      'below the limit: no wait',
      3,
      60_000,
      [
        ['fail', A],
        ['fail', A],
        ['retryAfter', A],
        ['count', A],
      ],
      ['failed', 'failed', 0, 2],
    ],
    [
      'at the limit: the rest of the window, rounded up to seconds',
      3,
      60_000,
      [
        ['fail', A],
        ['at', 1500],
        ['fail', A],
        ['fail', A],
        ['retryAfter', A],
      ],
      ['failed', 1500, 'failed', 'failed', 59],
    ],
    [
      'still locked 1 ms before the window ends, free at its end, counting from zero',
      2,
      10_000,
      [
        ['fail', A],
        ['fail', A],
        ['at', 9_999],
        ['retryAfter', A],
        ['at', 10_000],
        ['retryAfter', A],
        ['count', A],
      ],
      ['failed', 'failed', 9_999, 1, 10_000, 0, 0],
    ],
    [
      'the window starts at the first failure, not the last',
      2,
      10_000,
      [
        ['fail', A],
        ['at', 9_000],
        ['fail', A],
        ['retryAfter', A],
      ],
      ['failed', 9_000, 'failed', 1],
    ],
    [
      'a failure after the window opens a new one',
      2,
      10_000,
      [
        ['fail', A],
        ['at', 10_000],
        ['fail', A],
        ['retryAfter', A],
        ['count', A],
      ],
      ['failed', 10_000, 'failed', 0, 1],
    ],
    [
      'one client does not count against another',
      1,
      60_000,
      [
        ['fail', A],
        ['retryAfter', A],
        ['retryAfter', B],
        ['count', B],
      ],
      ['failed', 60, 0, 0],
    ],
    [
      'forgive takes back one failure',
      2,
      60_000,
      [
        ['fail', A],
        ['fail', A],
        ['forgive', A],
        ['retryAfter', A],
        ['count', A],
      ],
      ['failed', 'failed', 'forgiven', 0, 1],
    ],
    [
      'forgiving the last failure forgets the client',
      2,
      60_000,
      [
        ['fail', A],
        ['forgive', A],
        ['count', A],
        ['forgive', A],
        ['count', A],
      ],
      ['failed', 'forgiven', 0, 'forgiven', 0],
    ],
    [
      'an IPv6 /64 is one client',
      2,
      60_000,
      [
        ['fail', '2001:db8::1'],
        ['fail', '2001:db8::2'],
        ['retryAfter', '2001:db8::ffff'],
        ['retryAfter', '2001:db8:0:1::1'],
      ],
      ['failed', 'failed', 60, 0],
    ],
    [
      'an IPv4-mapped address is its IPv4 address',
      1,
      60_000,
      [
        ['fail', '::ffff:192.0.2.9'],
        ['retryAfter', '192.0.2.9'],
      ],
      ['failed', 60],
    ],
  ])('%s', (_, limit, windowMs, steps, expected) => {
    expect(play(limit, windowMs, steps)).toEqual(expected);
  });

  it.each<[string, Step[], unknown[]]>([
    [
      'full of live clients: the oldest is forgotten for a newcomer',
      [
        ['fail', A],
        ['fail', B],
        ['fail', '198.51.100.3'],
        ['count', A],
        ['count', B],
        ['count', '198.51.100.3'],
      ],
      ['failed', 'failed', 'failed', 0, 1, 1],
    ],
    [
      'full, with an expired client: the expired one goes first',
      [
        ['fail', A],
        ['at', 30_000],
        ['fail', B],
        ['at', 60_000],
        ['fail', '198.51.100.3'],
        ['count', B],
        ['count', '198.51.100.3'],
      ],
      ['failed', 30_000, 'failed', 60_000, 'failed', 1, 1],
    ],
  ])('bounded memory (2 keys): %s', (_, steps, expected) => {
    expect(play(5, 60_000, steps, 2)).toEqual(expected);
  });
});
