/**
 * What the fixture looks like from outside: Entra's tenant and scopes, the
 * routes it serves under any tenant segment, and the options, failures, stats
 * and methods of a running provider.
 */
/** Microsoft's tenant id for personal (MSA) accounts, i.e. what `consumers` resolves to. */
export const CONSUMER_TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad';

/** Every scope the fixture accepts; anything else is silently dropped by oidc-provider. */
export const SUPPORTED_SCOPES = [
  'openid',
  'profile',
  'offline_access',
  'email',
  'User.Read',
  'Files.ReadWrite',
  'Files.ReadWrite.All',
  'Group.Read.All',
  'Files.ReadWrite.AppFolder',
] as const;

export const GRAPH_RESOURCE_PREFIX = 'https://graph.microsoft.com/';

// The provider's own (tenant-less) routes. The fixture strips the tenant
// segment before handing a request to oidc-provider, and tells oidc-provider
// where it was "mounted" so every URL it generates keeps the tenant.
export const ROUTES = {
  authorization: '/oauth2/v2.0/authorize',
  token: '/oauth2/v2.0/token',
  end_session: '/oauth2/v2.0/logout',
  jwks: '/discovery/v2.0/keys',
  userinfo: '/oidc/userinfo',
} as const;

export const TENANT_ROUTE = /^\/([^/]+)(\/(?:oauth2|discovery|oidc)\/.*)$/;
export const TENANT_DISCOVERY = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/;
export const INTERACTION_ROUTE = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/;

export interface EntraOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Interface to bind; also the host part of `authority`. Default 127.0.0.1. */
  host?: string;
  /** Redirect URIs registered for the client. Can be changed later with `setRedirectUris`. */
  redirectUris?: string[];
  /**
   * Extra policy for redirect URIs not in the registered list, e.g. to accept
   * any loopback `/logged-in` callback before the broker's port is known.
   */
  acceptRedirectUri?: (redirectUri: string) => boolean;
  clientId?: string;
  clientSecret?: string;
  /** Access-token lifetime in seconds (default 3600). */
  accessTokenTtl?: number;
  /** Tenant id stamped into tokens (`tid`, issuer). Default: the consumer tenant. */
  tid?: string;
  /**
   * Grace for a refresh token that was already rotated: presented within this
   * many ms of its rotation, it is accepted once more (and rotates again)
   * instead of revoking the grant. Default 0: strict, every reuse revokes.
   */
  reuseGraceMs?: number;
}

/**
 * A canned token-endpoint answer. Without `status` (and without `hang`) the
 * request still reaches the provider, merely delayed by `delayMs`.
 */
export interface TokenFailure {
  status?: number;
  /** Objects are sent as JSON; strings verbatim. */
  body?: unknown;
  headers?: Record<string, string>;
  delayMs?: number;
  /** Never answer (until `close()`), for client timeout tests. */
  hang?: boolean;
}

export interface EntraStats {
  /** Every request to a token endpoint, canned or real. */
  tokenRequests: number;
  byGrant: { authorization_code: number; refresh_token: number; [grantType: string]: number };
  /** Times an already-rotated refresh token was presented outside the grace (each revoked its grant). */
  reuseDetected: number;
  /** Times an already-rotated refresh token was accepted once more, within `reuseGraceMs` of its rotation. */
  reuseWithinGrace: number;
}

export interface LoginOptions {
  /** Login name; decides the account (`oid`, `sub` are stable per name). Default `testuser`. */
  username?: string;
  /** Press "Cancel" instead of signing in (yields `error=access_denied`). */
  cancel?: boolean;
}

export interface Entra {
  /** `http://host:port`, no trailing slash; prefix of every endpoint. */
  readonly authority: string;
  /** `{authority}/{tid}/v2.0`, the `iss` of every id_token. */
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly tid: string;
  readonly tenant: 'consumers';
  readonly port: number;
  authorizeUrl(tenant?: string): string;
  tokenUrl(tenant?: string): string;
  /**
   * Plays the browser: follows the authorize URL through the login form and
   * returns the final redirect to the client (`?code=&state=` or `?error=`)
   * without requesting it.
   */
  login(authorizeUrl: string, opts?: LoginOptions): Promise<string>;
  stats(): EntraStats;
  resetStats(): void;
  /** The next `n` token requests get `failure` instead of the normal answer; `failNext(0, …)` clears the queue. */
  failNext(n: number, failure: TokenFailure): void;
  /** Delays every real token request by `ms` before the provider handles it. */
  setTokenDelay(ms: number): void;
  setAccessTokenTtl(seconds: number): void;
  /** See `EntraOptions.reuseGraceMs`; 0 restores strict reuse detection. */
  setReuseGraceMs(ms: number): void;
  /**
   * Every token the token endpoint handed out since start (kept across `resetStats`), so a
   * test can look for them where they must never appear (logs, pages, the store).
   */
  issued(): { accessTokens: string[]; refreshTokens: string[]; idTokens: string[] };
  /** Why the token endpoint refused grants (oidc-provider's `error_detail` or cause, e.g. "code_verifier does not match code_challenge"), in order; cleared by `resetStats`. */
  grantErrors(): string[];
  setRedirectUris(uris: string[]): void;
  addRedirectUri(uri: string): void;
  /** Simulates the user withdrawing consent: every grant and token dies. */
  revokeAllGrants(): void;
  /**
   * The owner made a new app secret and deleted the old one: from now on the
   * token endpoint takes only `secret` (anything else: invalid_client, AADSTS7000215).
   */
  rotateClientSecret(secret: string): void;
  /** Stable ids of the account a login name maps to (without logging in). */
  account(username: string): { sub: string; oid: string; preferredUsername: string };
  close(): Promise<void>;
}
