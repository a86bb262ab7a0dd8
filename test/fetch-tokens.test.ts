/**
 * The table of legacy Duplicati fetch tokens (`/?token=` … `/fetch?token=`), on its
 * own with a small capacity and a clock the test moves.
 */
import { describe, expect, it } from 'vitest';
import { FETCH_TOKEN_TTL_MS, FetchTokens } from '../src/broker/fetch-tokens.ts';
import { BrokerError } from '../src/errors.ts';
import { jsonError } from '../src/http/respond.ts';

describe('a full fetch-token table', () => {
  it('refuses a new token with 429 and Retry-After, and never pushes out a waiting one', () => {
    let t = 1_000_000;
    const table = new FetchTokens(() => t, 3);
    for (let i = 1; i <= 3; i++) {
      expect(table.register(`waiting-token-${i}`, { address: `192.0.2.${i}` })).toBe(true);
      t += 10_000;
    }
    let refused: unknown;
    try {
      table.register('newcomer-token', { address: '192.0.2.99' });
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
      expect(table.take(`waiting-token-${i}`)).toEqual({ kind: 'wait' });
      expect(table.attach(`waiting-token-${i}`, `authid-${i}`)).toBe(true);
    }
    expect(table.take('waiting-token-1')).toEqual({ kind: 'ready', authid: 'authid-1' });

    // A place freed (a token read) is a place for a newcomer.
    expect(table.register('newcomer-token', { address: '192.0.2.99' })).toBe(true);
  });

  it('expired tokens make room', () => {
    let t = 0;
    const table = new FetchTokens(() => t, 2);
    expect(table.register('first-token-1', { address: '192.0.2.1' })).toBe(true);
    expect(table.register('first-token-2', { address: '192.0.2.2' })).toBe(true);
    t += FETCH_TOKEN_TTL_MS + 1;
    expect(table.register('later-token-3', { address: '192.0.2.3' })).toBe(true);
    expect(table.take('first-token-1')).toEqual({ kind: 'unknown' });
  });
});
