import { generateAuthId } from '../crypto/authid.ts';
import { deriveKeys, sealJson } from '../crypto/seal.ts';
import { openTransient, sealTransient, transientId } from '../crypto/transient.ts';
import { BrokerError } from '../errors.ts';
import { readIdToken, type Account } from '../oauth/id-token.ts';
import { createPkce, randomToken } from '../oauth/pkce.ts';
import { endpointsOf, findService, type Provider, type ProviderApp, scopeString, SERVICES, type Service } from '../oauth/providers.ts';
import { redeemCode } from '../oauth/token-endpoint.ts';
import { appOf, notConfigured, redirectUri, tokenClient, type BrokerContext } from './context.ts';
import { PasscodeGuard } from './passcode.ts';
import type { SealedGrant } from './sealed-grant.ts';
import { short } from './tokens.ts';

/** Microsoft's codes live about 10 minutes; a login that takes longer starts over. */
export const LOGIN_TTL_MS = 10 * 60_000;
/** Bounds memory if someone with the passcode starts logins in a loop. */
const MAX_PENDING = 1000;

/** Sealed under the browser's cookie and filed under a hash of the state, in the store (see crypto/transient.ts). */
interface PendingLogin {
  /** The service's id. */
  service: string;
  codeVerifier: string;
  nonce: string;
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
  /** The new AuthID; for a provider without refresh tokens (pCloud), its access token, of which the broker keeps nothing. */
  authid: string;
  /** Empty when nothing was kept. */
  keyid: string;
  /** Nothing was stored: `authid` is the provider's own access token. */
  keptNothing?: true;
  service: Service;
  account: Account;
  extra?: string;
}

const KIND = 'login';

/**
 * The authorization-code flow with PKCE (S256), a state that is single-use and
 * bound to the browser by a cookie, and a nonce checked in the id_token. What a
 * login needs at its end is in the store, sealed under the browser's cookie, so
 * it may end on another instance than the one it started on.
 */
export class LoginFlow {
  readonly passcode: PasscodeGuard;

  constructor(private readonly ctx: BrokerContext) {
    this.passcode = new PasscodeGuard(
      () => ctx.config.passcodeHash,
      ctx.now,
      ctx.sleep,
      () => ctx.store,
    );
  }

  /** The services whose provider has an app on this broker. */
  configured(): readonly Service[] {
    return SERVICES.filter((s) => appOf(this.ctx.config, s.provider));
  }

  /** The services offered: only `only` when it names one of them (a page opened for one service), else all configured. */
  services(only?: string | null): readonly Service[] {
    const all = this.configured();
    const one = all.filter((s) => s.id === only);
    return one.length > 0 ? one : all;
  }

  async start(p: { serviceId: string; passcode: string; client: string; extra?: string }): Promise<LoginStart> {
    const service = this.offered(p.serviceId);
    await this.passcode.verify(p.passcode, p.client);
    return this.begin(service, p.extra);
  }

  /** For the machine's owner at the command line (`broker connect`): no passcode, the process is the browser binding. */
  startAsOwner(serviceId: string): Promise<LoginStart> {
    return this.begin(this.offered(serviceId));
  }

  private offered(serviceId: string): Service {
    const service = findService(serviceId);
    if (!service) throw unknownService(serviceId, this.configured());
    if (!appOf(this.ctx.config, service.provider)) throw notConfigured(service);
    return service;
  }

  private async begin(service: Service, extra?: string): Promise<LoginStart> {
    const now = this.ctx.now();
    if ((await this.ctx.store.countTransient(KIND, now)).count >= MAX_PENDING) {
      throw new BrokerError('rate_limited', 'Too many logins in progress; finish or wait for them to expire.', { retryAfter: 60 });
    }
    const { config } = this.ctx;
    const pkce = createPkce();
    const state = randomToken();
    const nonce = randomToken();
    const cookieValue = randomToken();
    const pending: PendingLogin = {
      service: service.id,
      codeVerifier: pkce.verifier,
      nonce,
      redirectUri: redirectUri(config),
      expiresAt: now + LOGIN_TTL_MS,
      extra,
    };
    const { store } = this.ctx;
    await store.putTransient(KIND, transientId(KIND, state), sealTransient(KIND, cookieValue, JSON.stringify(pending)), pending.expiresAt, now);
    const provider = service.provider;
    const app = appOf(config, provider)!;
    const url = new URL(endpointsOf(provider, app).authorizeUrl);
    const scope = scopeString(service);
    url.search = new URLSearchParams({
      client_id: app.clientId,
      response_type: 'code',
      redirect_uri: redirectUri(config),
      ...(scope ? { scope } : {}),
      state,
      ...(provider.idToken ? { nonce } : {}),
      ...(provider.pkce ? { code_challenge: pkce.challenge, code_challenge_method: 'S256' } : {}),
      ...provider.authorizeParams,
    }).toString();
    return { authorizeUrl: url.toString(), cookieValue, maxAgeSeconds: LOGIN_TTL_MS / 1000 };
  }

  async finish(p: {
    state?: string | null;
    code?: string | null;
    error?: string | null;
    cookieValue?: string | null;
    /** pCloud's callback names the API host of the account's region. */
    hostname?: string | null;
  }): Promise<LoginResult> {
    const { ctx } = this;
    // A callback without state is refused, whatever the provider: the login cookie alone is sent with any
    // top-level navigation from another site (SameSite=Lax), so it cannot stand in for state (login CSRF).
    const state = p.state;
    // Single use: whatever happens next, this state is spent, on every instance.
    const taken = state && state.length <= 512 ? await ctx.store.takeTransient(KIND, transientId(KIND, state), ctx.now()) : null;
    const opened = taken && p.cookieValue ? openTransient(KIND, p.cookieValue, taken.value) : null;
    const pending = opened ? (JSON.parse(opened) as PendingLogin) : null;
    const service = pending ? findService(pending.service) : undefined;
    if (p.error) {
      // Only the error code, never Microsoft's description: it is shown in a page and may echo input.
      const code = /^[a-z_]{1,64}$/.test(p.error) ? p.error : 'error';
      const provider = service?.provider;
      throw new BrokerError('login_failed', `${provider?.name ?? 'The provider'} did not complete the login (${code}).`, {
        hint: provider?.authorizeErrorHints?.[code] ?? "Start again from the broker's start page.",
      });
    }
    if (!taken || taken.expiresAt < ctx.now()) {
      throw new BrokerError('login_state_invalid', 'This login is unknown, was already used, or has expired.', {
        hint: "Start again from the broker's start page, in the same browser, within 10 minutes.",
      });
    }
    // Opened only with the cookie of the browser that started it.
    if (!pending || !service) {
      throw new BrokerError('login_state_invalid', 'This login was started in another browser (its cookie is missing).', {
        hint: "Start again from the broker's start page and finish in the same browser.",
      });
    }
    const provider = service.provider;
    if (!p.code || p.code.length > 4096) throw new BrokerError('login_failed', `${provider.name}'s answer has no authorization code.`);
    const { config } = ctx;
    const app = appOf(config, provider);
    if (!app) throw notConfigured(service);
    const tokens = await redeemCode(tokenClient(ctx, service, undefined, tokenUrlFor(provider, app, p.hostname)), {
      code: p.code,
      redirectUri: pending.redirectUri,
      codeVerifier: pending.codeVerifier,
      scope: scopeString(service),
    });
    if (provider.refreshTokens === 'none') {
      // Nothing to keep: the access token is the whole connection, and it goes to its owner alone.
      ctx.log.info('connection.shown', { service: service.id });
      return { authid: tokens.accessToken, keyid: '', keptNothing: true, service, account: {}, extra: pending.extra };
    }
    if (!tokens.refreshToken) {
      throw new BrokerError('login_failed', `${provider.name} sent no refresh token, so the broker could not keep this connection.`, {
        hint: provider.noRefreshTokenHint ?? 'Connect again; if it repeats, check the app at the provider.',
      });
    }
    const granted = provider.grantedScopeChecked && tokens.scope !== undefined ? tokens.scope.split(' ') : undefined;
    const missing = granted ? service.scopes.filter((s) => !granted.includes(s)) : [];
    if (missing.length) {
      throw new BrokerError('login_failed', `${provider.name} did not grant ${missing.join(' ')}, which ${service.name} needs.`, {
        hint: "Connect again and leave every permission ticked on the consent screen; for Dropbox, enable the scopes on the app's Permissions tab first.",
      });
    }
    let account: Account = {};
    if (provider.idToken) {
      if (!tokens.idToken) {
        throw new BrokerError('login_failed', `${provider.name} sent no id_token.`, { hint: 'Make sure the app has the openid and profile permissions.' });
      }
      account = readIdToken(tokens.idToken, { clientId: app.clientId, nonce: pending.nonce, authority: config.authority, now: ctx.now() });
    }
    const now = ctx.now();
    const { authid, parsed } = generateAuthId((n) => ctx.sodium.randombytes_buf(n));
    const keys = deriveKeys(ctx.sodium, parsed);
    const grant: SealedGrant = {
      v: 1,
      service: service.id,
      refreshToken: tokens.refreshToken,
      accessToken: tokens.accessToken,
      accessTokenExpiresAt: now + tokens.expiresIn * 1000,
      accessTokenLifetime: tokens.expiresIn,
      account,
      obtainedAt: now,
    };
    await ctx.store.insert({ keyid: parsed.keyid, service: service.id, checkTag: keys.checkTag, sealed: sealJson(ctx.sodium, keys.sealKey, grant), now });
    ctx.log.info('connection.created', { keyid: short(parsed.keyid), service: service.id });
    ctx.events?.report({ type: 'connection.created', keyid: parsed.keyid, service: service.id });
    return { authid, keyid: parsed.keyid, service, account, extra: pending.extra };
  }
}

export function unknownService(id: string, offered: readonly Service[] = SERVICES): BrokerError {
  return new BrokerError(
    'unknown_service',
    `This broker does not offer the service "${id.slice(0, 40)}"; it offers ${offered.map((s) => s.id).join(', ') || 'none yet'}.`,
  );
}

/**
 * pCloud: the token endpoint is on the API host of the account's region, named
 * by the callback. Only a host on the list gets the app secret: the provider's
 * own, or the host of the owner's --token-url.
 */
function tokenUrlFor(provider: Provider, app: ProviderApp, hostname: string | null | undefined): string | undefined {
  if (!provider.tokenHosts || !hostname) return undefined;
  const base = new URL(endpointsOf(provider, app).tokenUrl);
  const allowed = app.tokenUrl ? [base.host] : provider.tokenHosts;
  if (!allowed.includes(hostname.toLowerCase())) {
    throw new BrokerError('login_failed', `${provider.name} named an API host the broker does not know (${hostname.slice(0, 60)}).`, {
      hint: `Only ${allowed.join(' and ')} get the app secret; start again from the broker's start page.`,
    });
  }
  base.host = hostname.toLowerCase();
  return base.toString();
}
