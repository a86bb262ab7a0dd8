import { generateAuthId } from '../crypto/authid.ts';
import { safeEqual, sha256 } from '../crypto/compare.ts';
import { deriveKeys, sealJson } from '../crypto/seal.ts';
import { BrokerError } from '../errors.ts';
import { readIdToken, type Account } from '../oauth/id-token.ts';
import { createPkce, randomToken } from '../oauth/pkce.ts';
import { findService, scopeString, SERVICES, type Service } from '../oauth/services.ts';
import { redeemCode } from '../oauth/token-endpoint.ts';
import { redirectUri, tokenClient, type BrokerContext } from './context.ts';
import { PasscodeGuard } from './passcode.ts';
import type { SealedGrant } from './sealed-grant.ts';
import { short } from './tokens.ts';

/** Microsoft's codes live about 10 minutes; a login that takes longer starts over. */
export const LOGIN_TTL_MS = 10 * 60_000;
/** Bounds memory if someone with the passcode starts logins in a loop. */
const MAX_PENDING = 1000;

interface PendingLogin {
  service: Service;
  codeVerifier: string;
  nonce: string;
  cookieHash: Buffer;
  /** As sent to Microsoft: the redemption must repeat it, even if the settings were reloaded meanwhile. */
  redirectUri: string;
  expiresAt: number;
  /** Opaque data the caller wants back after the login (e.g. a Duplicati fetch token). */
  extra?: string;
}

export interface LoginStart {
  authorizeUrl: string;
  /** Goes into an HttpOnly cookie; the callback must present it. */
  cookieValue: string;
  maxAgeSeconds: number;
}

export interface LoginResult {
  authid: string;
  keyid: string;
  service: Service;
  account: Account;
  extra?: string;
}

/**
 * The authorization-code flow with PKCE (S256), a state that is single-use and
 * bound to the browser by a cookie, and a nonce checked in the id_token.
 */
export class LoginFlow {
  private readonly pending = new Map<string, PendingLogin>();
  readonly passcode: PasscodeGuard;

  constructor(private readonly ctx: BrokerContext) {
    this.passcode = new PasscodeGuard(() => ctx.config.passcodeHash, ctx.now, ctx.sleep);
  }

  /** The services offered: only `only` when it names one of them (a page opened for one service), else all. */
  services(only?: string | null): readonly Service[] {
    const one = SERVICES.filter((s) => s.id === only);
    return one.length > 0 ? one : SERVICES;
  }

  async start(p: { serviceId: string; passcode: string; client: string; extra?: string }): Promise<LoginStart> {
    const service = findService(p.serviceId);
    if (!service) throw unknownService(p.serviceId);
    await this.passcode.verify(p.passcode, p.client);
    return this.begin(service, p.extra);
  }

  /** For the machine's owner at the command line (`broker connect`): no passcode, the process is the browser binding. */
  startAsOwner(serviceId: string): LoginStart {
    const service = findService(serviceId);
    if (!service) throw unknownService(serviceId);
    return this.begin(service);
  }

  private begin(service: Service, extra?: string): LoginStart {
    this.sweep();
    if (this.pending.size >= MAX_PENDING) {
      throw new BrokerError('rate_limited', 'Too many logins in progress; finish or wait for them to expire.', { retryAfter: 60 });
    }
    const { config } = this.ctx;
    const pkce = createPkce();
    const state = randomToken();
    const nonce = randomToken();
    const cookieValue = randomToken();
    this.pending.set(state, {
      service,
      codeVerifier: pkce.verifier,
      nonce,
      cookieHash: sha256(cookieValue),
      redirectUri: redirectUri(config),
      expiresAt: this.ctx.now() + LOGIN_TTL_MS,
      extra,
    });
    const url = new URL(service.provider.authorizeUrl(config.authority, config.tenant));
    url.search = new URLSearchParams({
      client_id: config.clientId,
      response_type: 'code',
      redirect_uri: redirectUri(config),
      response_mode: 'query',
      scope: scopeString(service),
      state,
      nonce,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
    }).toString();
    return { authorizeUrl: url.toString(), cookieValue, maxAgeSeconds: LOGIN_TTL_MS / 1000 };
  }

  async finish(p: { state?: string | null; code?: string | null; error?: string | null; cookieValue?: string | null }): Promise<LoginResult> {
    const { ctx } = this;
    const pending = p.state ? this.pending.get(p.state) : undefined;
    // Single use: whatever happens next, this state is spent.
    if (p.state && pending) this.pending.delete(p.state);
    if (p.error) {
      // Only the error code, never Microsoft's description: it is shown in a page and may echo input.
      const code = /^[a-z_]{1,64}$/.test(p.error) ? p.error : 'error';
      throw new BrokerError('login_failed', `Microsoft did not complete the login (${code}).`, { hint: "Start again from the broker's start page." });
    }
    if (!pending || pending.expiresAt < ctx.now()) {
      throw new BrokerError('login_state_invalid', 'This login is unknown, was already used, or has expired.', {
        hint: "Start again from the broker's start page, in the same browser, within 10 minutes.",
      });
    }
    if (!p.cookieValue || !safeEqual(sha256(p.cookieValue), pending.cookieHash)) {
      throw new BrokerError('login_state_invalid', 'This login was started in another browser (its cookie is missing).', {
        hint: "Start again from the broker's start page and finish in the same browser.",
      });
    }
    if (!p.code || p.code.length > 4096) throw new BrokerError('login_failed', "Microsoft's answer has no authorization code.");
    const { config } = ctx;
    const tokens = await redeemCode(tokenClient(ctx, pending.service), {
      code: p.code,
      redirectUri: pending.redirectUri,
      codeVerifier: pending.codeVerifier,
      scope: scopeString(pending.service),
    });
    if (!tokens.refreshToken) {
      throw new BrokerError('login_failed', 'Microsoft sent no refresh token, so the broker could not keep this connection.', {
        hint: 'Make sure the app has the offline_access permission, then connect again.',
      });
    }
    if (!tokens.idToken) {
      throw new BrokerError('login_failed', 'Microsoft sent no id_token.', { hint: 'Make sure the app has the openid and profile permissions.' });
    }
    const account = readIdToken(tokens.idToken, { clientId: config.clientId, nonce: pending.nonce, authority: config.authority, now: ctx.now() });
    const now = ctx.now();
    const { authid, parsed } = generateAuthId((n) => ctx.sodium.randombytes_buf(n));
    const keys = deriveKeys(ctx.sodium, parsed);
    const grant: SealedGrant = {
      v: 1,
      service: pending.service.id,
      refreshToken: tokens.refreshToken,
      accessToken: tokens.accessToken,
      accessTokenExpiresAt: now + tokens.expiresIn * 1000,
      accessTokenLifetime: tokens.expiresIn,
      account,
      obtainedAt: now,
    };
    ctx.store.insert({ keyid: parsed.keyid, service: pending.service.id, checkTag: keys.checkTag, sealed: sealJson(ctx.sodium, keys.sealKey, grant), now });
    ctx.log.info('connection.created', { keyid: short(parsed.keyid), service: pending.service.id });
    ctx.events?.report({ type: 'connection.created', keyid: parsed.keyid, service: pending.service.id });
    return { authid, keyid: parsed.keyid, service: pending.service, account, extra: pending.extra };
  }

  private sweep(): void {
    const now = this.ctx.now();
    for (const [k, v] of this.pending) if (v.expiresAt < now) this.pending.delete(k);
  }
}

export function unknownService(id: string): BrokerError {
  const offered = SERVICES.map((s) => s.id).join(', ');
  return new BrokerError('unknown_service', `This broker does not offer the service "${id.slice(0, 40)}"; it offers ${offered}.`);
}
