import { safeEqual, sha256 } from '../crypto/compare.ts';
import { BrokerError } from '../errors.ts';
import { FailureLimiter } from './rate-limit.ts';

/**
 * Duplicati's legacy web UI cannot receive a postMessage: it opens the start page
 * with a random `token`, then polls `/fetch?token=` until the login attached the
 * new authid to it. A fetch token lives 5 minutes unclaimed, 30 seconds once it
 * holds an authid, and is read at most once.
 */
export const FETCH_TOKEN_TTL_MS = 5 * 60_000;
export const FETCH_TOKEN_READY_TTL_MS = 30_000;
/** Anyone may register fetch tokens; this bounds the memory they can take. */
export const MAX_FETCH_TOKENS = 10_000;
const TOKEN_SHAPE = /^[A-Za-z0-9._~-]{9,128}$/;

export type FetchState = { kind: 'missing' } | { kind: 'unknown' } | { kind: 'wait' } | { kind: 'ready'; authid: string };

export class FetchTokens {
  private readonly entries = new Map<string, { expiresAt: number; authid?: string }>();
  /** Registrations per client address, so that one client cannot push out everyone else's tokens. */
  private readonly perClient: FailureLimiter;

  constructor(
    private readonly now: () => number,
    private readonly capacity = MAX_FETCH_TOKENS,
  ) {
    this.perClient = new FailureLimiter(30, FETCH_TOKEN_TTL_MS, now);
  }

  static valid(token: string | null | undefined): token is string {
    return typeof token === 'string' && TOKEN_SHAPE.test(token);
  }

  /**
   * What the registering browser keeps in a cookie: a login may carry the token
   * only from that browser, so a token planted in a link collects nothing.
   */
  static cookieValue(token: string): string {
    return sha256(`broker/fetch-token\0${token}`).toString('base64url');
  }

  static cookieMatches(token: string, cookie: string | null | undefined): boolean {
    return FetchTokens.valid(token) && safeEqual(cookie ?? '', FetchTokens.cookieValue(token));
  }

  /**
   * False if the token is taken, or the client has registered too many. A full
   * table refuses (`rate_limited`, until its oldest entry ends) rather than push
   * out a token whose login is under way: a flood of registrations must not cost
   * a real Duplicati user the AuthID they are signing in for.
   */
  register(token: string, client: { readonly address: string } = { address: 'unknown' }): boolean {
    if (!FetchTokens.valid(token)) return false;
    const t = this.now();
    const e = this.entries.get(token);
    if (e && e.expiresAt > t) return !e.authid; // the same page reloaded; never extend or reset an entry
    if (this.perClient.retryAfter(client.address) > 0) return false;
    if (this.entries.size >= this.capacity) this.sweep(t);
    if (this.entries.size >= this.capacity) {
      let soonest = Number.POSITIVE_INFINITY;
      for (const v of this.entries.values()) soonest = Math.min(soonest, v.expiresAt);
      throw new BrokerError('rate_limited', 'Too many Duplicati logins are waiting right now; try again in a few minutes.', {
        retryAfter: Math.max(1, Math.ceil((soonest - t) / 1000)),
      });
    }
    this.perClient.fail(client.address);
    this.entries.set(token, { expiresAt: t + FETCH_TOKEN_TTL_MS });
    return true;
  }

  /** True if the token was waiting and now holds the authid. */
  attach(token: string, authid: string): boolean {
    const e = this.entries.get(token);
    const t = this.now();
    if (!e || e.expiresAt <= t || e.authid) return false;
    e.authid = authid;
    e.expiresAt = t + FETCH_TOKEN_READY_TTL_MS;
    return true;
  }

  take(token: string | null | undefined): FetchState {
    if (!token) return { kind: 'missing' };
    const e = this.entries.get(token);
    if (!e) return { kind: 'unknown' };
    if (e.expiresAt <= this.now()) {
      this.entries.delete(token);
      return { kind: 'unknown' };
    }
    if (!e.authid) return { kind: 'wait' };
    this.entries.delete(token);
    return { kind: 'ready', authid: e.authid };
  }

  private sweep(t: number): void {
    for (const [k, v] of this.entries) if (v.expiresAt <= t) this.entries.delete(k);
  }
}
