import { AUTHID_LENGTH, KEYID_LENGTH, parseAuthId, type AuthId } from '../crypto/authid.ts';
import { safeEqual } from '../crypto/compare.ts';
import { checkTagMatches, deriveKeys, openJson, sealJson, type DerivedKeys } from '../crypto/seal.ts';
import { BrokerError } from '../errors.ts';
import { findService, scopeString, type Service } from '../oauth/services.ts';
import { refreshGrant, type TokenResponse } from '../oauth/token-endpoint.ts';
import type { ConnectionHead } from '../store/types.ts';
import { tokenClient, UPSTREAM_BUDGET_MS, type BrokerContext } from './context.ts';
import { SharedLimiter } from './rate-limit.ts';
import type { SealedGrant } from './sealed-grant.ts';

export interface AccessToken {
  accessToken: string;
  expiresAt: number;
  service: string;
  keyid: string;
  /** How the token was obtained: for logs and metrics. `stale` = Microsoft failed, a still-valid token was served. */
  source: 'cache' | 'store' | 'refreshed' | 'stale';
}

interface CacheEntry {
  /** What a cache hit hands out: one object for the entry's life, so callers may memoise per token (the answer's JSON). */
  token: Readonly<AccessToken>;
  /** The token's whole lifetime, ms: how much of it must be left to serve it (`fresh`). */
  lifetime: number;
  /** The row version the token belongs to; any change to the row makes it stale. */
  version: number;
  /** The row's check tag: lets a cached token be served, to its holder only, while the store is unreachable. */
  checkTag: Uint8Array;
  /**
   * SHA-256 of an authid text that passed the full check for this entry: the same
   * text again is the same holder (see `cachedToken`). Gone with the entry.
   */
  proof?: Uint8Array;
}

/** A connection's grant as this refresh holds it, and the row version it belongs to. */
interface Held {
  grant: SealedGrant;
  version: number;
}

/** A rotation the store could not take: the envelope to write over `baseVersion`, and what it holds. */
interface Unsaved {
  baseVersion: number;
  sealed: Uint8Array;
  grant: SealedGrant;
}

/** Never hand out a token with less than this left: Duplicati subtracts 30 s and then uses it. */
export const MIN_REMAINING_MS = 35_000;
/** Refresh early: a backup may run for a long time on the token it was given. */
const PREFERRED_REMAINING_MS = 5 * 60_000;
/** Pauses between attempts when Microsoft fails transiently, cut short by the request budget. */
const RETRY_DELAYS_MS = [250, 1000, 3000];
/** Last use is written at most this often per connection. */
const TOUCH_INTERVAL_MS = 60_000;
/** The longest a refresh waits for another instance's refresh of the same connection: below Duplicati's 25 s per attempt. */
export const REFRESH_LOCK_WAIT_MS = 22_000;
/** Rows remembered while the change feed is live; beyond it the memory starts over. */
const MAX_HEADS = 100_000;

const GENERIC = () => new BrokerError('invalid_authid', 'Unknown AuthID or wrong secret.', { hint: 'Check that the whole AuthID was copied.' });

/**
 * Hands out access tokens for authids: from memory while enough of the token's
 * life is left, else by refreshing at Microsoft. Refreshes of one connection are
 * single-flight, and the rotated refresh token is sealed and written with a
 * compare-and-swap before any caller sees the new access token.
 */
export class TokenService {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<AccessToken>>();
  private readonly touched = new Map<string, number>();
  private readonly misconfigLogged = new Set<string>();
  /**
   * Rotations Microsoft made that the store could not take (disk full, read-only):
   * the only copy of the newest refresh token, written first at the next request.
   */
  private readonly unsaved = new Map<string, Unsaved>();
  /**
   * Rows as last read, while the store reports every change (PostgreSQL's
   * LISTEN/NOTIFY pushes them; SQLite's data_version is asked before each use): a
   * cache hit then needs no row read. Emptied whenever the
   * feed goes down or comes back (it may have missed changes), and not used while
   * it is down: every request reads the row then.
   */
  private readonly heads = new Map<string, ConnectionHead>();
  /** Counts changes seen on the feed: a row read before a change must not be remembered after it. */
  private epoch = 0;
  /** Failed authid attempts per client address. */
  readonly failures: SharedLimiter;
  /** Compared against when a keyid is unknown, so both paths do the same work. */
  private readonly dummyTag: Uint8Array;
  /** The same for `cachedToken`'s proof. */
  private readonly dummyProof: Uint8Array;

  constructor(
    private readonly ctx: BrokerContext,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    this.dummyTag = ctx.sodium.randombytes_buf(32);
    this.dummyProof = ctx.sodium.randombytes_buf(32);
    this.failures = new SharedLimiter(() => ctx.store, 'authid', 20, 5 * 60_000, ctx.now);
    this.watch();
  }

  /** Follows the store's change feed, if it has one. The store itself stays the same object for the service's life. */
  private watch(): void {
    const feed = this.ctx.store.changes;
    if (!feed) return;
    feed.subscribe(
      (keyid, version) => {
        this.epoch++;
        this.heads.delete(keyid);
        const hit = this.cache.get(keyid);
        if (hit && hit.version !== version) this.cache.delete(keyid);
      },
      (live) => {
        this.epoch++;
        this.heads.clear();
        if (live) this.ctx.log.info('store.changes_up');
        else this.ctx.log.warn('store.changes_down', { hint: 'reading the row on every request until the listening connection is back' });
      },
      () => {
        // Something changed and the feed cannot say what (SQLite): read every row again.
        this.epoch++;
        this.heads.clear();
      },
    );
  }

  /** The row's head: remembered while the change feed is live, else read. */
  private async head(keyid: string): Promise<ConnectionHead | null> {
    const feed = this.ctx.store.changes;
    if (!feed?.live) return this.ctx.store.getHead(keyid);
    // An asked feed (SQLite's data_version) reports commits made since the last request now, before anything remembered is used.
    feed.sync?.();
    const known = this.heads.get(keyid);
    if (known) return known;
    const epoch = this.epoch;
    const read = await this.ctx.store.getHead(keyid);
    if (read && epoch === this.epoch && feed.live) {
      if (this.heads.size >= MAX_HEADS) this.heads.clear();
      this.heads.set(keyid, read);
    }
    return read;
  }

  /**
   * Verifies the authid against the store; throws the generic error for anyone
   * not holding it. A client address with too many failures gets `rate_limited`
   * instead, but only on failure: a valid authid is never refused or slowed.
   */
  async authenticate(
    authidText: string,
    client: string | { readonly address: string } = 'unknown',
  ): Promise<{ id: AuthId; keys: DerivedKeys; record: ConnectionHead }> {
    let id: AuthId;
    try {
      id = parseAuthId(authidText);
    } catch (e) {
      throw await this.failed(client, e as BrokerError);
    }
    const keys = deriveKeys(this.ctx.sodium, id);
    const record = await this.head(id.keyid);
    const ok = checkTagMatches(this.ctx.sodium, keys.checkTag, record?.checkTag ?? this.dummyTag);
    if (!record || !ok) throw await this.failed(client, GENERIC());
    return { id, keys, record };
  }

  private async failed(from: string | { readonly address: string }, e: BrokerError): Promise<BrokerError> {
    const client = typeof from === 'string' ? from : from.address;
    let wait: number;
    try {
      wait = await this.failures.fail(client);
    } catch {
      // The store is unreachable: the request fails anyway, with the answer it deserves.
      return e;
    }
    if (wait > 0) return new BrokerError('rate_limited', 'Too many failed AuthID attempts from this address; wait before trying again.', { retryAfter: wait });
    return e;
  }

  /**
   * The cache hit without awaiting anything, or null when anything needs a closer
   * look (the full `getAccessToken` then decides, and answers every failure).
   *
   * A text whose SHA-256 equals the proof of a cached entry is a text that passed
   * the full check for that entry (the keyed BLAKE2b against the row's check tag),
   * so it is not checked again; the row's head is still consulted on every call,
   * through the change feed, so a revoke anywhere is refused on the next request.
   * A wrong authid always goes to the full path, where failures are counted.
   */
  cachedToken(authidText: string): AccessToken | null {
    const feed = this.ctx.store.changes;
    if (!feed?.live || authidText.length !== AUTHID_LENGTH || authidText.charCodeAt(KEYID_LENGTH) !== 58 /* : */) return null;
    const keyid = authidText.slice(0, KEYID_LENGTH);
    const hit = this.cache.get(keyid);
    // Compared whether or not the keyid is cached: the time taken does not tell which.
    const proven = safeEqual(Bun.SHA256.hash(authidText) as Uint8Array, hit?.proof ?? this.dummyProof);
    if (!hit || !proven) return null;
    feed.sync?.();
    const head = this.heads.get(keyid);
    const now = this.ctx.now();
    // Still in memory after a sync: the row is unchanged since it was read.
    if (head?.state !== 'active' || head.version !== hit.version || this.cache.get(keyid) !== hit || !fresh(hit.token.expiresAt, hit.lifetime, now))
      return null;
    this.touch(keyid, now);
    return hit.token;
  }

  async getAccessToken(authidText: string, client?: string | { readonly address: string }): Promise<AccessToken> {
    const token = await this.tokenFor(authidText, client);
    // The text passed the full check: `cachedToken` may serve it while the entry lasts.
    const hit = this.cache.get(token.keyid);
    if (hit && authidText.length === AUTHID_LENGTH) hit.proof = Bun.SHA256.hash(authidText) as Uint8Array;
    return token;
  }

  private async tokenFor(authidText: string, client?: string | { readonly address: string }): Promise<AccessToken> {
    let authed: Awaited<ReturnType<TokenService['authenticate']>>;
    try {
      authed = await this.authenticate(authidText, client);
    } catch (e) {
      const bridged = this.whileStoreDown(e, authidText);
      if (bridged) return bridged;
      throw e;
    }
    const { id, keys, record } = authed;
    if (record.state !== 'active') {
      // Revoked or ended elsewhere (the CLI): nothing of it stays in this process.
      this.forget(id.keyid);
    }
    assertUsable(record, this.ctx.config.publicUrl);
    const now = this.ctx.now();
    this.touch(id.keyid, now);
    const hit = this.cache.get(id.keyid);
    if (hit && hit.version === record.version && fresh(hit.token.expiresAt, hit.lifetime, now)) return hit.token;
    let flight = this.inflight.get(id.keyid);
    if (!flight) {
      // One flight per connection in this process, and one lock per connection across
      // the instances sharing the store: the others wait, then find the new token stored.
      flight = this.ctx.store.withRefreshLock(id.keyid, REFRESH_LOCK_WAIT_MS, () => this.refresh(id, keys)).finally(() => this.inflight.delete(id.keyid));
      this.inflight.set(id.keyid, flight);
    }
    return flight;
  }

  /**
   * The store cannot be reached: a cached token that is still good is served to
   * the holder of its authid (checked against the tag remembered with it). Nobody
   * can revoke while the store is down either, so this serves nothing a revoke
   * has taken back; everything else fails with the store's own 5xx.
   */
  private whileStoreDown(e: unknown, authidText: string): AccessToken | null {
    if (!(e instanceof BrokerError) || e.code !== 'store_error') return null;
    let id: AuthId;
    try {
      id = parseAuthId(authidText);
    } catch {
      return null;
    }
    const hit = this.cache.get(id.keyid);
    if (!hit || !fresh(hit.token.expiresAt, hit.lifetime, this.ctx.now())) return null;
    if (!safeEqual(deriveKeys(this.ctx.sodium, id).checkTag, hit.checkTag)) return null;
    this.ctx.log.warn('store.unreachable_served_cache', { keyid: short(id.keyid) });
    return hit.token;
  }

  /** Opens the sealed grant for its holder (for /status). */
  async open(keys: DerivedKeys, keyid: string): Promise<SealedGrant | null> {
    const sealed = (await this.ctx.store.get(keyid))?.sealed;
    return sealed ? openJson<SealedGrant>(this.ctx.sodium, keys.sealKey, sealed) : null;
  }

  /**
   * Drops anything remembered about a connection (after revoke), also a rotation
   * the store could not take: the connection is over, and that refresh token must
   * not outlive it in memory nor be written back.
   */
  forget(keyid: string): void {
    this.cache.delete(keyid);
    this.heads.delete(keyid);
    this.touched.delete(keyid);
    this.unsaved.delete(keyid);
  }

  /** Connections whose newest refresh token only this process holds: a restart now would lose them. */
  unsavedCount(): number {
    return this.unsaved.size;
  }

  private touch(keyid: string, now: number): void {
    const last = this.touched.get(keyid);
    if (last !== undefined && now - last < TOUCH_INTERVAL_MS) return;
    this.touched.set(keyid, now);
    // Bookkeeping only, not awaited (a full disk must not stop a backup from getting its token), and
    // written after this turn of the event loop: SQLite's write waits for an fsync, which the answer need
    // not wait for (on a refresh it then overlaps the call to the provider).
    setImmediate(() => this.ctx.store.touch(keyid, now).catch(() => this.ctx.log.warn('store.touch_failed', { keyid: short(keyid) })));
  }

  /**
   * One refresh of a connection (single-flight: `getAccessToken` runs one at a
   * time per keyid). The row is re-read inside the flight: it may have changed
   * while we waited our turn.
   */
  private async refresh(id: AuthId, keys: DerivedKeys): Promise<AccessToken> {
    const { ctx } = this;
    const record = await ctx.store.get(id.keyid);
    if (!record?.sealed) throw GENERIC();
    assertUsable(record, ctx.config.publicUrl);
    const held = await this.replayUnsaved(id.keyid, { grant: openJson<SealedGrant>(ctx.sodium, keys.sealKey, record.sealed), version: record.version });
    if (fresh(held.grant.accessTokenExpiresAt, held.grant.accessTokenLifetime * 1000, ctx.now()))
      return this.serveStored(id.keyid, held, record.service, record.checkTag);
    const service = findService(record.service);
    if (!service) throw new BrokerError('unknown_service', `This connection's service "${record.service}" is not offered by this broker.`);
    const started = ctx.now();
    let tokens: TokenResponse;
    try {
      tokens = await this.callProvider(service, held.grant.refreshToken);
    } catch (e) {
      return this.upstreamFailed(explained(e, service, ctx.now() - record.createdAt), id.keyid, held, record.service);
    }
    const next = await this.saveRotation(id.keyid, keys, held, tokens, started, record.checkTag);
    return served(id.keyid, record.service, next, 'refreshed');
  }

  /**
   * A rotation the store could not take earlier holds the only refresh token
   * Microsoft still accepts: it is written before anything else. If the row has
   * changed since (revoked, or another process wrote it), that rotation is moot.
   */
  private async replayUnsaved(keyid: string, stored: Held): Promise<Held> {
    const pending = this.unsaved.get(keyid);
    if (!pending) return stored;
    if (pending.baseVersion !== stored.version) {
      this.unsaved.delete(keyid);
      return stored;
    }
    await this.persist(keyid, stored.version, pending.sealed, this.ctx.now(), pending);
    this.unsaved.delete(keyid);
    this.ctx.log.info('connection.saved_pending', { keyid: short(keyid) });
    return { grant: pending.grant, version: stored.version + 1 };
  }

  /** The token sealed with the grant is still good (a restarted broker, or another process refreshed): no call to Microsoft. */
  private serveStored(keyid: string, held: Held, service: string, checkTag: Uint8Array): AccessToken {
    this.remember(keyid, held.version, held.grant, checkTag);
    return served(keyid, service, held.grant, 'store');
  }

  /**
   * What a failed call to Microsoft means for the connection and the caller:
   * a sign-in Microsoft demands ends the connection; a rejected app registration
   * is logged once per cause; a transient failure is bridged with the token we
   * hold while it is still good. Anything else goes to the caller as it is.
   */
  private async upstreamFailed(e: unknown, keyid: string, held: Held, service: string): Promise<AccessToken> {
    const err = e instanceof BrokerError ? e : new BrokerError('internal', 'Internal error in the broker; see its log.', { cause: e });
    if (err.code === 'login_required') throw await this.endForSignIn(keyid, held.version, err, service);
    if (err.code === 'app_misconfigured') this.logMisconfiguredOnce(err, findService(service)?.provider.id ?? 'microsoft');
    // Microsoft failed, but the token we hold is still good for a while: a backup can go on.
    if ((err.code === 'upstream_error' || err.code === 'upstream_timeout') && held.grant.accessTokenExpiresAt - this.ctx.now() >= MIN_REMAINING_MS) {
      return this.serveStale(keyid, held, service, err);
    }
    throw err;
  }

  /** Microsoft wants a new sign-in: the connection is marked so, and nothing of it stays in memory. */
  private async endForSignIn(keyid: string, version: number, err: BrokerError, service: string): Promise<BrokerError> {
    const { ctx } = this;
    const marked = await ctx.store.setState(keyid, version, 'login_required', err.message, ctx.now());
    this.forget(keyid);
    if (!marked) {
      // The row changed during the call (a revoke, most likely): its state is the answer, and no one is told to sign in again.
      const now = await ctx.store.getHead(keyid);
      if (now?.state === 'revoked') return revokedError(ctx.config.publicUrl);
    }
    ctx.log.warn('connection.login_required', { keyid: short(keyid) });
    ctx.events?.report({ type: 'connection.login_required', keyid, service, reason: err.message });
    return new BrokerError('login_required', `${err.message} Create a new AuthID at ${ctx.config.publicUrl}/`, { cause: err });
  }

  /** Every refresh fails alike until the owner fixes the app: one log line per distinct cause, not one per request. */
  private logMisconfiguredOnce(err: BrokerError, provider: string): void {
    // Microsoft's trace id differs on every answer, so it is not part of the key.
    const cause = err.message.replace(/; trace id [^\]]*/, '');
    if (this.misconfigLogged.has(cause) || this.misconfigLogged.size >= 100) return;
    this.misconfigLogged.add(cause);
    this.ctx.log.warn('app.misconfigured', { reason: err.message });
    this.ctx.events?.report({ type: 'app.rejected', provider, reason: cause });
  }

  /** The still-valid token we hold, unless the connection changed during the call (which may have taken seconds). */
  private async serveStale(keyid: string, held: Held, service: string, err: BrokerError): Promise<AccessToken> {
    const { ctx } = this;
    // A revoke that landed meanwhile wins over the old token.
    const head = await ctx.store.getHead(keyid);
    if (!head) throw GENERIC();
    if (head.state !== 'active') {
      this.forget(keyid);
      assertUsable(head, ctx.config.publicUrl);
    }
    if (head.version !== held.version) throw conflictError();
    ctx.log.warn('connection.served_stale', { keyid: short(keyid), error: err.code });
    return served(keyid, service, held.grant, 'stale');
  }

  /**
   * Seals Microsoft's answer and writes it before any caller sees the new access
   * token: Microsoft rotates the refresh token on every use, so the old one may
   * already be spent.
   */
  private async saveRotation(keyid: string, keys: DerivedKeys, held: Held, tokens: TokenResponse, started: number, checkTag: Uint8Array): Promise<SealedGrant> {
    const { ctx } = this;
    const done = ctx.now();
    const next: SealedGrant = {
      ...held.grant,
      // If a provider did not rotate, the old refresh token stays valid.
      refreshToken: tokens.refreshToken ?? held.grant.refreshToken,
      accessToken: tokens.accessToken,
      accessTokenExpiresAt: started + tokens.expiresIn * 1000,
      accessTokenLifetime: tokens.expiresIn,
      obtainedAt: done,
    };
    const sealed = sealJson(ctx.sodium, keys.sealKey, next);
    // The new refresh token exists only in this process until this write succeeds.
    await this.persist(keyid, held.version, sealed, done, { baseVersion: held.version, sealed, grant: next });
    this.remember(keyid, held.version + 1, next, checkTag);
    ctx.log.info('connection.refreshed', { keyid: short(keyid), ms: done - started });
    return next;
  }

  /**
   * Compare-and-swap of a new envelope. If the store fails, the rotation is kept
   * in memory (the old refresh token may already be spent at Microsoft) and the
   * caller gets a 5xx that says so; the next request writes it first.
   */
  private async persist(keyid: string, version: number, sealed: Uint8Array, now: number, keep: Unsaved): Promise<void> {
    const { ctx } = this;
    let swapped: boolean;
    try {
      swapped = await ctx.store.compareAndSwap(keyid, version, sealed, now);
    } catch (e) {
      this.unsaved.set(keyid, keep);
      ctx.log.warn('store.write_failed', { keyid: short(keyid) });
      const why = e instanceof BrokerError ? e.message : 'The store could not be written.';
      throw new BrokerError('store_error', `${why} The broker keeps the new refresh token in memory and saves it with the next request.`, {
        cause: e,
        hint: 'Free space in BROKER_HOME or make it writable, then try again; do not restart the broker until then.',
      });
    }
    if (!swapped) {
      this.unsaved.delete(keyid);
      const row = await ctx.store.getHead(keyid).catch(() => null);
      if (row?.state === 'revoked') throw revokedError(ctx.config.publicUrl);
      throw conflictError();
    }
  }

  /**
   * Retries transient failures with back-off, within one budget for the whole request;
   * except at a provider whose refresh tokens are single-use (Box): a timeout or a 5xx
   * may come after the provider spent the token, and sending it again would end the grant.
   */
  private async callProvider(service: Service, refreshToken: string): Promise<TokenResponse> {
    const { ctx } = this;
    const deadline = ctx.now() + (ctx.config.upstreamBudgetMs ?? UPSTREAM_BUDGET_MS);
    for (let attempt = 0; ; attempt++) {
      const left = deadline - ctx.now();
      const t0 = performance.now();
      const observe = (outcome: string) => {
        ctx.observer?.upstreamCall(outcome, (performance.now() - t0) / 1000);
        ctx.events?.report({ type: 'upstream.call', provider: service.provider.id, outcome });
      };
      try {
        const result = await refreshGrant(tokenClient(ctx, service, left), { refreshToken, scope: scopeString(service) });
        observe('ok');
        return result;
      } catch (e) {
        observe(e instanceof BrokerError ? e.code : 'internal');
        const transient = e instanceof BrokerError && (e.code === 'upstream_error' || e.code === 'upstream_timeout');
        const delay = service.provider.refreshTokens === 'single-use' ? undefined : RETRY_DELAYS_MS[attempt];
        if (!transient || delay === undefined || ctx.now() + delay + 500 >= deadline) throw e;
        ctx.log.warn('upstream.retry', { attempt: attempt + 1, error: (e as BrokerError).code });
        await this.sleep(delay);
      }
    }
  }

  private remember(keyid: string, version: number, g: SealedGrant, checkTag: Uint8Array): void {
    // Our own write moved the row on: the remembered head follows (its notification arrives later).
    const head = this.heads.get(keyid);
    if (head && head.version < version) this.heads.set(keyid, { ...head, version });
    this.cache.set(keyid, {
      token: Object.freeze(served(keyid, g.service, g, 'cache')),
      checkTag,
      lifetime: g.accessTokenLifetime * 1000,
      version,
    });
  }
}

function served(keyid: string, service: string, g: SealedGrant, source: AccessToken['source']): AccessToken {
  return { accessToken: g.accessToken, expiresAt: g.accessTokenExpiresAt, service, keyid, source };
}

function fresh(expiresAt: number, lifetimeMs: number, now: number): boolean {
  const wanted = Math.max(MIN_REMAINING_MS, Math.min(PREFERRED_REMAINING_MS, lifetimeMs / 2));
  return expiresAt - now >= wanted;
}

function assertUsable(r: ConnectionHead, publicUrl: string): void {
  if (r.state === 'revoked') throw revokedError(publicUrl);
  if (r.state === 'login_required') {
    throw new BrokerError('login_required', `${r.stateReason ?? 'Microsoft asks you to sign in again.'} Create a new AuthID at ${publicUrl}/`);
  }
}

export function revokedError(publicUrl: string): BrokerError {
  return new BrokerError('revoked', `This AuthID was revoked; create a new one at ${publicUrl}/`);
}

function conflictError(): BrokerError {
  return new BrokerError('conflict', 'The connection was changed by another process during the refresh.', { hint: 'Try again.' });
}

/** A provider's "sign in again", with what the connection's age says about why (Google's 7 days in Testing). */
function explained(e: unknown, service: Service, ageMs: number): unknown {
  const note = e instanceof BrokerError && e.code === 'login_required' ? service.provider.signInAgainNote?.(ageMs / 86_400_000) : undefined;
  return note ? new BrokerError('login_required', `${(e as BrokerError).message} ${note}`, { cause: e, hint: (e as BrokerError).hint }) : e;
}

/** The first characters of a keyid: enough to tell connections apart in a log. */
export function short(keyid: string): string {
  return keyid.slice(0, 11);
}
