import { safeEqual, sha256 } from '../crypto/compare.ts';
import { openTransient, sealTransient, transientId } from '../crypto/transient.ts';
import { BrokerError } from '../errors.ts';
import type { Store } from '../store/types.ts';
import { SharedLimiter } from './rate-limit.ts';

/**
 * Duplicati's legacy web UI cannot receive a postMessage: it opens the start page
 * with a random `token`, then polls `/fetch?token=` until the login attached the
 * new authid to it. A fetch token lives 5 minutes unclaimed, 30 seconds once it
 * holds an authid, and is read at most once.
 *
 * The table is in the store, so the login may end on another instance than the
 * one Duplicati polls. It holds a hash of each token, and the authid sealed under
 * the token itself: the store alone yields no authid.
 */
export const FETCH_TOKEN_TTL_MS = 5 * 60_000;
export const FETCH_TOKEN_READY_TTL_MS = 30_000;
/** Anyone may register fetch tokens; this bounds the room they can take. */
export const MAX_FETCH_TOKENS = 10_000;
const TOKEN_SHAPE = /^[A-Za-z0-9._~-]{9,128}$/;
const KIND = 'fetch';
const WAITING = new Uint8Array(0);

export type FetchState = { kind: 'missing' } | { kind: 'unknown' } | { kind: 'wait' } | { kind: 'ready'; authid: string };

export class FetchTokens {
  /** Registrations per client address, so that one client cannot push out everyone else's tokens. */
  private readonly perClient: SharedLimiter;

  constructor(
    private readonly store: () => Store,
    private readonly now: () => number,
    private readonly capacity = MAX_FETCH_TOKENS,
  ) {
    this.perClient = new SharedLimiter(store, 'fetch-register', 30, FETCH_TOKEN_TTL_MS, now);
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
  async register(token: string, client: { readonly address: string } = { address: 'unknown' }): Promise<boolean> {
    if (!FetchTokens.valid(token)) return false;
    const store = this.store();
    const t = this.now();
    const id = transientId(KIND, token);
    const e = await store.getTransient(KIND, id, t);
    if (e) return e.value.length === 0; // the same page reloaded; never extend or reset an entry
    if ((await this.perClient.retryAfter(client.address)) > 0) return false;
    const { count, soonest } = await store.countTransient(KIND, t);
    if (count >= this.capacity) {
      throw new BrokerError('rate_limited', 'Too many Duplicati logins are waiting right now; try again in a few minutes.', {
        retryAfter: Math.max(1, Math.ceil(((soonest ?? t) - t) / 1000)),
      });
    }
    await this.perClient.fail(client.address);
    return store.putTransient(KIND, id, WAITING, t + FETCH_TOKEN_TTL_MS, t);
  }

  /** True if the token was waiting and now holds the authid. */
  async attach(token: string, authid: string): Promise<boolean> {
    const t = this.now();
    return this.store().replaceTransient(KIND, transientId(KIND, token), WAITING, sealTransient(KIND, token, authid), t + FETCH_TOKEN_READY_TTL_MS, t);
  }

  async take(token: string | null | undefined): Promise<FetchState> {
    if (!token) return { kind: 'missing' };
    const store = this.store();
    const id = transientId(KIND, token);
    const t = this.now();
    const e = await store.getTransient(KIND, id, t);
    if (!e) return { kind: 'unknown' };
    if (e.value.length === 0) return { kind: 'wait' };
    // Single use: only the poll that removes it gets the authid.
    const taken = await store.takeTransient(KIND, id, t);
    const authid = taken && openTransient(KIND, token, taken.value);
    return authid ? { kind: 'ready', authid } : { kind: 'unknown' };
  }
}
