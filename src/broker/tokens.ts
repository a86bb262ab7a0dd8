import { parseAuthId, type AuthId } from '../crypto/authid.ts';
import { checkTagMatches, deriveKeys, openJson, sealJson, type DerivedKeys } from '../crypto/seal.ts';
import { BrokerError } from '../errors.ts';
import { findService, scopeString } from '../oauth/services.ts';
import { refreshGrant } from '../oauth/token-endpoint.ts';
import type { ConnectionRecord } from '../store/store.ts';
import type { BrokerContext } from './context.ts';
import type { SealedGrant } from './sealed-grant.ts';

export interface AccessToken {
  accessToken: string;
  expiresAt: number;
  service: string;
  keyid: string;
  /** How the token was obtained: for logs and metrics. */
  source: 'cache' | 'store' | 'refreshed';
}

interface CacheEntry {
  accessToken: string;
  expiresAt: number;
  lifetime: number;
  service: string;
  /** The row version the token belongs to; any change to the row makes it stale. */
  version: number;
}

/** Never hand out a token with less than this left, even for very short-lived tokens. */
const MIN_REMAINING_MS = 35_000;
/** Refresh early: a backup may run for a long time on the token it was given. */
const PREFERRED_REMAINING_MS = 5 * 60_000;

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
  /** Compared against when a keyid is unknown, so both paths do the same work. */
  private readonly dummyTag: Uint8Array;

  constructor(private readonly ctx: BrokerContext) {
    this.dummyTag = ctx.sodium.randombytes_buf(32);
  }

  /** Verifies the authid against the store; throws the generic error for anyone not holding it. */
  authenticate(authidText: string): { id: AuthId; keys: DerivedKeys; record: ConnectionRecord } {
    const id = parseAuthId(authidText);
    const keys = deriveKeys(this.ctx.sodium, id);
    const record = this.ctx.store.get(id.keyid);
    const ok = checkTagMatches(this.ctx.sodium, keys.checkTag, record?.checkTag ?? this.dummyTag);
    if (!record || !ok) throw GENERIC();
    return { id, keys, record };
  }

  async getAccessToken(authidText: string): Promise<AccessToken> {
    const { id, keys, record } = this.authenticate(authidText);
    assertUsable(record, this.ctx.config.publicUrl);
    const now = this.ctx.now();
    const hit = this.cache.get(id.keyid);
    if (hit && hit.version === record.version && fresh(hit.expiresAt, hit.lifetime, now)) {
      return { accessToken: hit.accessToken, expiresAt: hit.expiresAt, service: hit.service, keyid: id.keyid, source: 'cache' };
    }
    let flight = this.inflight.get(id.keyid);
    if (!flight) {
      flight = this.refresh(id, keys).finally(() => this.inflight.delete(id.keyid));
      this.inflight.set(id.keyid, flight);
    }
    return flight;
  }

  /** Drops anything remembered about a connection (after revoke). */
  forget(keyid: string): void {
    this.cache.delete(keyid);
  }

  private async refresh(id: AuthId, keys: DerivedKeys): Promise<AccessToken> {
    const { ctx } = this;
    // Re-read inside the flight: the row may have changed while we waited our turn.
    const record = ctx.store.get(id.keyid);
    if (!record) throw GENERIC();
    assertUsable(record, ctx.config.publicUrl);
    if (!record.sealed) throw GENERIC();
    const grant = openJson<SealedGrant>(ctx.sodium, keys.sealKey, record.sealed);
    const now = ctx.now();
    if (fresh(grant.accessTokenExpiresAt, grant.accessTokenLifetime * 1000, now)) {
      this.remember(id.keyid, record.version, grant);
      return { accessToken: grant.accessToken, expiresAt: grant.accessTokenExpiresAt, service: record.service, keyid: id.keyid, source: 'store' };
    }
    const service = findService(record.service);
    if (!service) throw new BrokerError('unknown_service', `This connection's service "${record.service}" is not offered by this broker.`);
    const started = ctx.now();
    let tokens;
    try {
      tokens = await refreshGrant(
        {
          fetch: ctx.fetch,
          tokenUrl: service.provider.tokenUrl(ctx.config.authority, ctx.config.tenant),
          clientId: ctx.config.clientId,
          clientSecret: ctx.config.clientSecret,
          timeoutMs: ctx.config.upstreamTimeoutMs ?? 20_000,
        },
        { refreshToken: grant.refreshToken, scope: scopeString(service) },
      );
    } catch (e) {
      if (e instanceof BrokerError && e.code === 'login_required') {
        ctx.store.setState(id.keyid, record.version, 'login_required', e.message, ctx.now());
        this.forget(id.keyid);
        ctx.log.warn('connection.login_required', { keyid: short(id.keyid) });
        throw withPublicUrl(e, ctx.config.publicUrl);
      }
      throw e;
    }
    const done = ctx.now();
    const next: SealedGrant = {
      ...grant,
      // Microsoft rotates on every use; if a provider did not, the old one stays valid.
      refreshToken: tokens.refreshToken ?? grant.refreshToken,
      accessToken: tokens.accessToken,
      accessTokenExpiresAt: started + tokens.expiresIn * 1000,
      accessTokenLifetime: tokens.expiresIn,
      obtainedAt: done,
    };
    const sealed = sealJson(ctx.sodium, keys.sealKey, next);
    if (!ctx.store.compareAndSwap(id.keyid, record.version, sealed, done)) {
      const now2 = ctx.store.get(id.keyid);
      if (now2?.state === 'revoked') throw revokedError(ctx.config.publicUrl);
      throw new BrokerError('conflict', 'The connection was changed by another process during the refresh.', { hint: 'Try again.' });
    }
    this.remember(id.keyid, record.version + 1, next);
    ctx.log.info('connection.refreshed', { keyid: short(id.keyid), ms: done - started });
    return { accessToken: next.accessToken, expiresAt: next.accessTokenExpiresAt, service: record.service, keyid: id.keyid, source: 'refreshed' };
  }

  private remember(keyid: string, version: number, g: SealedGrant): void {
    this.cache.set(keyid, {
      accessToken: g.accessToken,
      expiresAt: g.accessTokenExpiresAt,
      lifetime: g.accessTokenLifetime * 1000,
      service: g.service,
      version,
    });
  }
}

function fresh(expiresAt: number, lifetimeMs: number, now: number): boolean {
  const wanted = Math.max(MIN_REMAINING_MS, Math.min(PREFERRED_REMAINING_MS, lifetimeMs / 2));
  return expiresAt - now >= wanted;
}

function assertUsable(r: ConnectionRecord, publicUrl: string): void {
  if (r.state === 'revoked') throw revokedError(publicUrl);
  if (r.state === 'login_required') {
    throw new BrokerError('login_required', `Microsoft asks you to sign in again for this connection; create a new AuthID at ${publicUrl}/`, {
      hint: r.stateReason ?? undefined,
    });
  }
}

export function revokedError(publicUrl: string): BrokerError {
  return new BrokerError('revoked', `This AuthID was revoked; create a new one at ${publicUrl}/`);
}

function withPublicUrl(e: BrokerError, publicUrl: string): BrokerError {
  return new BrokerError(e.code, `${e.message} Create a new AuthID at ${publicUrl}/`, { cause: e });
}

/** The first characters of a keyid: enough to tell connections apart in a log. */
export function short(keyid: string): string {
  return keyid.slice(0, 11);
}
