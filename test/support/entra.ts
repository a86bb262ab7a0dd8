/**
 * A local, real OpenID provider (oidc-provider) dressed up as Microsoft Entra
 * ID's v2.0 endpoints, so the broker can be exercised end to end without
 * mocking its OAuth client.
 *
 * Layout (base = `http://127.0.0.1:<port>`):
 *   {base}/{tenant}/oauth2/v2.0/authorize          (any tenant segment)
 *   {base}/{tenant}/oauth2/v2.0/token
 *   {base}/{tenant}/oauth2/v2.0/logout
 *   {base}/{tenant}/discovery/v2.0/keys
 *   {base}/{tenant}/v2.0/.well-known/openid-configuration
 *   {base}/interaction/{uid}                        (login page, plain HTML form)
 *
 * The issuer is `{base}/{tid}/v2.0`, like Entra's, regardless of the tenant
 * segment used in the request.
 *
 * Deliberate deviations from oidc-provider defaults, each to match Entra:
 *   - offline_access yields a refresh token without `prompt=consent`;
 *   - consent is granted automatically (the user only sees a login form);
 *   - refresh tokens rotate on every use, and replaying a used one revokes
 *     the whole grant (stricter than Entra, on purpose: it is the failure the
 *     broker must never provoke). With `reuseGraceMs` > 0, a rotated token
 *     presented within that many ms of its rotation is accepted once more
 *     (it rotates again, the grant survives; counted in `reuseWithinGrace`):
 *     a narrow model of Entra, which does not revoke old refresh tokens on
 *     use, for a client that died between sending a refresh and storing the
 *     answer; anything older, or a second replay, still revokes;
 *   - token endpoint errors carry `error_codes`, `trace_id`, `correlation_id`.
 */

import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type OidcProvider from 'oidc-provider';
import type { Account, Adapter, AdapterConstructor, AdapterPayload, ErrorOut, InteractionDetails, InteractionResults, KoaContext, Next } from 'oidc-provider';

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

const GRAPH_RESOURCE_PREFIX = 'https://graph.microsoft.com/';

// The provider's own (tenant-less) routes. The fixture strips the tenant
// segment before handing a request to oidc-provider, and tells oidc-provider
// where it was "mounted" so every URL it generates keeps the tenant.
const ROUTES = {
  authorization: '/oauth2/v2.0/authorize',
  token: '/oauth2/v2.0/token',
  end_session: '/oauth2/v2.0/logout',
  jwks: '/discovery/v2.0/keys',
  userinfo: '/oidc/userinfo',
} as const;

const TENANT_ROUTE = /^\/([^/]+)(\/(?:oauth2|discovery|oidc)\/.*)$/;
const TENANT_DISCOVERY = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/;
const INTERACTION_ROUTE = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/;

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

// ---------------------------------------------------------------------------
// Loading oidc-provider quietly

let providerModule: Promise<typeof OidcProvider> | undefined;

/**
 * oidc-provider prints "Unsupported runtime" at import time when it sees Bun.
 * That is noise for us (it works), so the warning is filtered for exactly the
 * duration of the first import.
 */
function loadProvider(): Promise<typeof OidcProvider> {
  providerModule ??= (async () => {
    const original = console.warn;
    console.warn = (...args: unknown[]): void => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
      original(...args);
    };
    try {
      return (await import('oidc-provider')).default;
    } finally {
      console.warn = original;
    }
  })();
  return providerModule;
}

// A 2048-bit RSA key takes noticeable time to generate; one per process is
// plenty and keeps per-test startup fast. Supplying our own key also avoids
// oidc-provider's "development-only signing keys" warning.
let signingJwk: object | undefined;

function getSigningJwk(): object {
  if (!signingJwk) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = randomBytes(12).toString('base64url');
    signingJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  }
  return signingJwk;
}

// ---------------------------------------------------------------------------
// Storage

interface StoredEntry {
  payload: AdapterPayload;
  expiresAt: number | undefined;
}

/**
 * In-memory persistence for oidc-provider. The bundled memory adapter would
 * work, but it warns on every start and gives no way to enumerate grants,
 * which `revokeAllGrants` needs. Expiry is checked lazily, so no timers.
 */
class MemoryStore {
  readonly models = new Map<string, Map<string, StoredEntry>>();
  /** Grace for rotated refresh tokens (see `EntraOptions.reuseGraceMs`). */
  reuseGraceMs = 0;
  /** Called when a rotated refresh token is accepted (and rotated) within the grace. */
  onReuseWithinGrace: () => void = () => {};
  /** When each refresh token was first rotated, and whether its one grace use was taken. */
  readonly #rotations = new Map<string, { at: number; graceClaimed: boolean }>();

  /**
   * Hides `consumed` from the provider for one presentation within the grace,
   * so oidc-provider rotates the token again instead of revoking the grant.
   * Claimed synchronously, so two concurrent replays cannot both get it.
   */
  presentRefreshToken(id: string, payload: AdapterPayload): AdapterPayload {
    if (!payload.consumed || this.reuseGraceMs <= 0) return payload;
    const rotation = this.#rotations.get(id);
    if (!rotation || rotation.graceClaimed || Date.now() - rotation.at > this.reuseGraceMs) return payload;
    rotation.graceClaimed = true;
    const { consumed: _consumed, ...rest } = payload;
    return rest;
  }

  consumedRefreshToken(id: string, alreadyConsumed: boolean): void {
    const rotation = this.#rotations.get(id);
    if (alreadyConsumed && rotation?.graceClaimed) {
      this.onReuseWithinGrace();
      return;
    }
    if (rotation) return;
    if (this.#rotations.size >= 10_000) {
      // Bounded: forget rotations far outside any grace a test would use.
      const cutoff = Date.now() - 10 * 60_000;
      for (const [k, v] of this.#rotations) if (v.at < cutoff) this.#rotations.delete(k);
    }
    this.#rotations.set(id, { at: Date.now(), graceClaimed: false });
  }

  forgetRefreshToken(id: string): void {
    this.#rotations.delete(id);
  }

  model(name: string): Map<string, StoredEntry> {
    let entries = this.models.get(name);
    if (!entries) {
      entries = new Map();
      this.models.set(name, entries);
    }
    return entries;
  }

  adapter(): AdapterConstructor {
    const store = this;

    return class MemoryAdapter implements Adapter {
      readonly #entries: Map<string, StoredEntry>;
      readonly #isRefreshToken: boolean;

      constructor(modelName: string) {
        this.#entries = store.model(modelName);
        this.#isRefreshToken = modelName === 'RefreshToken';
      }

      #live(id: string): StoredEntry | undefined {
        const entry = this.#entries.get(id);
        if (entry?.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
          this.#entries.delete(id);
          return undefined;
        }
        return entry;
      }

      #findBy(field: 'uid' | 'userCode', value: string): AdapterPayload | undefined {
        for (const [id, entry] of this.#entries) {
          if (entry.payload[field] === value) return this.#live(id) ? { ...entry.payload } : undefined;
        }
        return undefined;
      }

      async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
        // Copy so later mutations of the model instance don't leak into
        // "persisted" state, as with a real database.
        this.#entries.set(id, {
          payload: { ...payload },
          expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined,
        });
      }

      async find(id: string): Promise<AdapterPayload | undefined> {
        const entry = this.#live(id);
        if (!entry) return undefined;
        return this.#isRefreshToken ? store.presentRefreshToken(id, { ...entry.payload }) : { ...entry.payload };
      }

      async findByUid(uid: string): Promise<AdapterPayload | undefined> {
        return this.#findBy('uid', uid);
      }

      async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
        return this.#findBy('userCode', userCode);
      }

      async consume(id: string): Promise<void> {
        const entry = this.#live(id);
        if (!entry) return;
        if (this.#isRefreshToken) store.consumedRefreshToken(id, Boolean(entry.payload.consumed));
        entry.payload.consumed = Math.floor(Date.now() / 1000);
      }

      async destroy(id: string): Promise<void> {
        this.#entries.delete(id);
        if (this.#isRefreshToken) store.forgetRefreshToken(id);
      }

      async revokeByGrantId(grantId: string): Promise<void> {
        for (const [id, entry] of this.#entries) {
          if (entry.payload.grantId !== grantId) continue;
          this.#entries.delete(id);
          if (this.#isRefreshToken) store.forgetRefreshToken(id);
        }
      }
    };
  }
}

// ---------------------------------------------------------------------------
// Accounts

interface AccountInfo {
  sub: string;
  oid: string;
  name: string;
  preferredUsername: string;
}

function hashHex(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

function normalizeLogin(username: string): string {
  return username.trim().toLowerCase() || 'testuser';
}

/** Formats 32 hex digits as a GUID. */
function guid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---------------------------------------------------------------------------
// Small helpers

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Just enough of a browser cookie store for `login()`: honours Path and
 * deletion, which is what oidc-provider relies on (its interaction and resume
 * cookies are scoped to their own paths, so a path bug here would also break
 * a real browser). Domain, Secure and SameSite don't matter on one origin.
 */
class CookieJar {
  readonly #cookies = new Map<string, { name: string; value: string; path: string }>();

  store(requestUrl: URL, setCookieLines: string[]): void {
    for (const line of setCookieLines) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = requestUrl.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [key = '', attrValue = ''] = attribute.split('=');
        if (/^path$/i.test(key) && attrValue.startsWith('/')) path = attrValue;
        if (/^max-age$/i.test(key) && Number(attrValue) <= 0) expired = true;
        if (/^expires$/i.test(key) && Date.parse(attrValue) <= Date.now()) expired = true;
      }
      const key = `${name}\u0000${path}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  header(url: URL): string | undefined {
    const matching = [...this.#cookies.values()].filter(({ path }) => url.pathname === path || url.pathname.startsWith(path.endsWith('/') ? path : `${path}/`));
    return matching.length ? matching.map(({ name, value }) => `${name}=${value}`).join('; ') : undefined;
  }
}

function isErrorBody(body: unknown): body is ErrorOut {
  return typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string';
}

/** AADSTS codes for the oidc-provider failures a broker is likely to meet. */
function entraErrorCode(error: string, detail: string | undefined): number {
  switch (detail) {
    case 'refresh token is expired':
      return 700082;
    case 'authorization code is expired':
      return 70008;
    case 'authorization code already consumed':
      return 54005;
    case 'authorization code redirect_uri mismatch':
      return 70000;
    default:
      break;
  }
  switch (error) {
    case 'invalid_grant':
      return 70000;
    case 'invalid_client':
      return 7000215;
    case 'invalid_request':
      return 900144;
    case 'unsupported_grant_type':
      return 70003;
    case 'invalid_scope':
      return 70011;
    case 'unauthorized_client':
      return 700016;
    default:
      return 90000;
  }
}

/** Entra's error body shape: `{error, error_description, error_codes, timestamp, trace_id, correlation_id}`. */
function entraErrorBody(out: ErrorOut, detail: string | undefined): Record<string, unknown> {
  const code = entraErrorCode(out.error, detail);
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const reason = detail ?? out.error_description ?? out.error;
  return {
    error: out.error,
    error_description: `AADSTS${code}: ${reason}. Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  };
}

function freshStats(): EntraStats {
  return { tokenRequests: 0, byGrant: { authorization_code: 0, refresh_token: 0 }, reuseDetected: 0, reuseWithinGrace: 0 };
}

// ---------------------------------------------------------------------------
// Pages

const PAGE_STYLE =
  'body{font-family:"Segoe UI",sans-serif;background:#f2f2f2;margin:0}' +
  'main{background:#fff;max-width:440px;margin:60px auto;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}' +
  'label{display:block;margin-top:16px}input{width:100%;padding:6px 0;border:0;border-bottom:1px solid #666;font-size:15px}' +
  '.buttons{margin-top:24px;display:flex;gap:8px;justify-content:flex-end}' +
  'button{padding:6px 24px;font-size:15px;border:0;cursor:pointer}#submit{background:#0067b8;color:#fff}';

function page(title: string, content: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${PAGE_STYLE}</style></head>
<body><main>${content}</main></body>
</html>`;
}

/**
 * The only interactive page. Ids are stable so Playwright can target them:
 * `#username`, `#password`, `#submit`, `#cancel`.
 */
function loginPage(uid: string, loginHint: string | undefined): string {
  const base = `/interaction/${encodeURIComponent(uid)}`;
  return page(
    'Sign in to your account',
    `<h1>Sign in</h1>
<p>Local Entra ID test fixture. Any user name works; the password is ignored.</p>
<form id="login-form" method="post" action="${base}/login">
  <label for="username">Email, phone, or Skype</label>
  <input id="username" name="username" type="text" autocomplete="username" required autofocus value="${escapeHtml(loginHint ?? '')}">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <div class="buttons">
    <button id="cancel" type="submit" form="cancel-form">Cancel</button>
    <button id="submit" type="submit">Sign in</button>
  </div>
</form>
<form id="cancel-form" method="post" action="${base}/abort"></form>`,
  );
}

// ---------------------------------------------------------------------------
// The fixture

export async function startEntra(opts: EntraOptions = {}): Promise<Entra> {
  const Provider = await loadProvider();

  const host = opts.host ?? '127.0.0.1';
  const clientId = opts.clientId ?? randomUUID();
  // Entra secrets look like `abc8Q~...`; the shape doesn't matter, only that it is opaque.
  const clientSecret = opts.clientSecret ?? `${randomBytes(3).toString('hex')}8Q~${randomBytes(27).toString('base64url')}`;
  const tid = opts.tid ?? CONSUMER_TENANT_ID;
  let accessTokenTtl = opts.accessTokenTtl ?? 3600;
  let tokenDelayMs = 0;
  let redirectUris = new Set(opts.redirectUris ?? []);
  const acceptRedirectUri = opts.acceptRedirectUri;
  let stats = freshStats();
  const issued = { accessTokens: [] as string[], refreshTokens: [] as string[], idTokens: [] as string[] };
  let grantErrors: string[] = [];
  const failures: TokenFailure[] = [];
  const store = new MemoryStore();
  store.reuseGraceMs = opts.reuseGraceMs ?? 0;
  store.onReuseWithinGrace = () => {
    stats.reuseWithinGrace += 1;
  };
  const accounts = new Map<string, AccountInfo>();
  /** Set by rotateClientSecret; translated to the registered secret before oidc-provider sees it. */
  let rotatedSecret: string | undefined;

  // Everything that could keep the process alive after close(): sockets,
  // pending delays and deliberately hung requests.
  const sockets = new Set<Socket>();
  const pending = new Set<{ timer: ReturnType<typeof setTimeout> | undefined; resolve: () => void }>();
  let closed = false;

  /**
   * Resolves after `ms`, or forever-ish (`ms` undefined) — but always as soon
   * as the fixture closes, so nothing outlives close().
   */
  function pause(ms: number | undefined): Promise<void> {
    if (closed || ms === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        timer: undefined as ReturnType<typeof setTimeout> | undefined,
        resolve: (): void => {
          if (entry.timer) clearTimeout(entry.timer);
          pending.delete(entry);
          resolve();
        },
      };
      if (ms !== undefined) entry.timer = setTimeout(entry.resolve, ms);
      pending.add(entry);
    });
  }
  const sleep = (ms: number | undefined): Promise<void> => pause(ms ?? 0);
  const untilClosed = (): Promise<void> => pause(undefined);

  function accountFor(username: string): AccountInfo {
    const login = normalizeLogin(username);
    const preferredUsername = login.includes('@') ? login : `${login}@outlook.com`;
    // MSA object ids start with 16 zero hex digits; organisational ones are
    // full random-looking GUIDs. Mimic whichever tenant we pose as.
    const oidHex = hashHex('oid', tid, preferredUsername);
    const oid = tid === CONSUMER_TENANT_ID ? guid(`0000000000000000${oidHex.slice(0, 16)}`) : guid(oidHex);
    // Entra's `sub` is pairwise (per app), unlike `oid`.
    const sub = createHash('sha256').update(`sub\u0000${clientId}\u0000${oid}`).digest('base64url');
    const account = { sub, oid, name: login.split('@')[0] ?? login, preferredUsername };
    accounts.set(sub, account);
    return account;
  }

  const server: Server = createServer();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // The issuer embeds the port, so the provider can only be built once we listen.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const authority = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const issuer = `${authority}/${tid}/v2.0`;

  // Built in a helper so a configuration error can't leave the port bound.
  let provider: OidcProvider;
  try {
    provider = createProvider();
  } catch (error) {
    server.close();
    throw error;
  }

  function createProvider(): OidcProvider {
    return new Provider(issuer, {
      adapter: store.adapter(),
      jwks: { keys: [getSigningJwk()] },
      // No cookies.keys on purpose: signing would pull in keygrip/tsscmp, which
      // trips a crypto.pseudoRandomBytes deprecation warning under Bun, and the
      // cookie values are unguessable ids anyway.
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          // oidc-provider insists on at least one; the live list below is what is enforced.
          redirect_uris: opts.redirectUris?.length ? opts.redirectUris : ['http://127.0.0.1/logged-in'],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_post',
          application_type: 'web',
          client_name: 'Broker (test)',
        },
      ],
      scopes: [...SUPPORTED_SCOPES],
      // Entra puts profile claims in the id_token even though an access token is
      // issued too; oidc-provider's conformant mode would move them to userinfo.
      conformIdTokenClaims: false,
      claims: {
        openid: ['sub', 'tid', 'oid', 'ver'],
        profile: ['name', 'preferred_username'],
        email: ['email'],
      },
      // Entra requires redirect_uri at the token endpoint.
      allowOmittingSingleRegisteredRedirectUri: false,
      pkce: { required: () => true },
      routes: { ...ROUTES },
      rotateRefreshToken: true,
      ttl: {
        AccessToken: () => accessTokenTtl,
        AuthorizationCode: 600,
        IdToken: 3600,
        RefreshToken: 90 * 24 * 3600,
        // Longer than a refresh token, so rotation never outlives its grant.
        Grant: 365 * 24 * 3600,
        Interaction: 3600,
        Session: 14 * 24 * 3600,
      },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      findAccount: async (_ctx, sub): Promise<Account | undefined> => {
        const account = accounts.get(sub);
        if (!account) return undefined;
        return {
          accountId: sub,
          claims: () => ({
            sub,
            tid,
            oid: account.oid,
            ver: '2.0',
            name: account.name,
            preferred_username: account.preferredUsername,
            email: account.preferredUsername,
          }),
        };
      },
      // A confidential client talking server-to-server has no business sending
      // Origin; Entra rejects cross-origin redemption for web apps too.
      clientBasedCORS: () => false,
      renderError: (ctx, out) => {
        if (ctx.oidc?.route === 'token') {
          // Entra's token endpoint answers JSON whatever the Accept header says.
          ctx.type = 'application/json';
          ctx.body = out;
          return;
        }
        ctx.type = 'html';
        ctx.body = page(
          'Sign in error',
          `<h1>Something went wrong</h1><p id="error">${escapeHtml(out.error)}</p>` +
            `<p id="error_description">${escapeHtml(out.error_description ?? '')}</p>`,
        );
      },
      features: {
        devInteractions: { enabled: false },
        // Without resource indicators, access tokens are opaque and carry the
        // granted (Graph-style) scopes, which is all the broker can observe anyway.
        resourceIndicators: { enabled: false },
        dPoP: { enabled: false },
        pushedAuthorizationRequests: { enabled: false },
        userinfo: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: (ctx: KoaContext, form: string): void => {
            ctx.type = 'html';
            ctx.body = page(
              'Sign out',
              `<h1>Sign out?</h1>${form}<div class="buttons"><button id="submit" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button></div>`,
            );
          },
          postLogoutSuccessSource: (ctx: KoaContext): void => {
            ctx.type = 'html';
            ctx.body = page('Signed out', '<h1>You signed out of your account</h1>');
          },
        },
      },
    });
  }

  // Redirect URIs are checked against live state so tests can register the
  // broker's callback after they learn its port.
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(uri: string): boolean {
    return redirectUris.has(uri) || (acceptRedirectUri?.(uri) ?? false);
  };

  provider.on('grant.error', (ctx, error) => {
    ctx.state.errorDetail = error.error_detail;
    grantErrors.push(String(error.error_detail ?? (error as { cause?: Error }).cause?.message ?? error.error));
    // oidc-provider has already revoked the grant by the time this fires.
    if (error.error_detail === 'refresh token already used') stats.reuseDetected += 1;
  });
  provider.on('server_error', (_ctx, error) => {
    // A 500 here is a fixture bug, never an expected test outcome: be loud.
    console.error('entra fixture: oidc-provider server_error', error);
  });

  // Koa prints every stream error unless someone listens. Clients hanging up
  // mid-request (timeout tests do it on purpose) are expected; the rest is
  // filtered the way koa's default handler would.
  provider.on('error', (error) => {
    if (error.expose || error.status === 404) return;
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || error.code === 'ECONNABORTED') return;
    console.error('entra fixture: unhandled error', error);
  });

  async function finishInteraction(ctx: KoaContext, result: InteractionResults): Promise<void> {
    const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.redirect(redirectTo);
    ctx.status = 303;
  }

  /** Grants everything requested: the fixture has no consent screen, like a pre-consented app. */
  async function grantAll(details: InteractionDetails, accountId: string): Promise<string> {
    let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
    if (!grant || grant.accountId !== accountId) {
      grant = new provider.Grant({ accountId, clientId: details.params.client_id ?? clientId });
    }
    if (details.params.scope) grant.addOIDCScope(details.params.scope);
    return grant.save();
  }

  async function handleInteraction(ctx: KoaContext, action: string | undefined): Promise<void> {
    ctx.set('Cache-Control', 'no-store');
    try {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      if (action === 'abort' && ctx.method === 'POST') {
        await finishInteraction(ctx, {
          error: 'access_denied',
          error_description: 'AADSTS65004: User declined to consent to access the app.',
        });
      } else if (action === 'login' && ctx.method === 'POST') {
        const form = new URLSearchParams(await readBody(ctx.req));
        const account = accountFor(form.get('username') ?? '');
        const grantId = await grantAll(details, account.sub);
        await finishInteraction(ctx, { login: { accountId: account.sub }, consent: { grantId } });
      } else if (action === undefined && ctx.method === 'GET') {
        if (details.prompt.name === 'login' || !details.session) {
          ctx.type = 'html';
          ctx.body = loginPage(details.uid, details.params.login_hint);
        } else {
          // Already signed in; only consent is pending, and it is implied.
          const grantId = await grantAll(details, details.session.accountId);
          await finishInteraction(ctx, { consent: { grantId } });
        }
      } else {
        ctx.status = 405;
        ctx.body = 'method not allowed';
      }
    } catch (error) {
      // Typically an expired or foreign interaction cookie; show it rather
      // than letting koa log it.
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = page('Sign in error', `<h1>Sign in failed</h1><p id="error">${escapeHtml(String(error))}</p>`);
    }
  }

  /**
   * Entra-isms on the authorization request, applied before oidc-provider sees it.
   */
  function adjustAuthorizationQuery(ctx: KoaContext): void {
    const query = new URLSearchParams(ctx.querystring);
    const scopes = (query.get('scope') ?? '')
      .split(' ')
      .filter(Boolean)
      .map((scope) => (scope.startsWith(GRAPH_RESOURCE_PREFIX) ? scope.slice(GRAPH_RESOURCE_PREFIX.length) : scope));
    const prompts = new Set((query.get('prompt') ?? '').split(' ').filter(Boolean));
    // Entra's account picker; the closest oidc-provider knows is a fresh login.
    if (prompts.delete('select_account')) prompts.add('login');
    // Per OpenID Connect, oidc-provider drops offline_access unless
    // prompt=consent is present; Entra issues a refresh token regardless.
    // Consent is auto-granted, so forcing the prompt costs only a redirect.
    // (prompt=none cannot carry consent, so it keeps OIDC semantics.)
    if (scopes.includes('offline_access') && !prompts.has('none')) prompts.add('consent');
    if (scopes.length) query.set('scope', scopes.join(' '));
    if (prompts.size) query.set('prompt', [...prompts].join(' '));
    ctx.querystring = query.toString();
  }

  async function handleToken(ctx: KoaContext, next: Next): Promise<void> {
    stats.tokenRequests += 1;
    const failure = failures.shift();

    if (failure && (failure.status !== undefined || failure.hang)) {
      // The body is read only to count the grant type; the provider never sees it.
      const grantType = new URLSearchParams(await readBody(ctx.req)).get('grant_type');
      if (grantType) stats.byGrant[grantType] = (stats.byGrant[grantType] ?? 0) + 1;
      if (failure.hang) {
        ctx.respond = false;
        await untilClosed();
        return;
      }
      await sleep(failure.delayMs);
      ctx.status = failure.status ?? 500;
      for (const [name, value] of Object.entries(failure.headers ?? {})) ctx.set(name, value);
      if (failure.body !== undefined) {
        if (typeof failure.body === 'string') {
          ctx.body = failure.body;
          if (!failure.headers || !Object.keys(failure.headers).some((h) => h.toLowerCase() === 'content-type')) {
            ctx.type = /^\s*[{[]/.test(failure.body) ? 'application/json' : 'text/plain';
          }
        } else {
          ctx.body = failure.body;
        }
      }
      return;
    }

    await sleep((failure?.delayMs ?? 0) + tokenDelayMs);
    if (rotatedSecret !== undefined) {
      const form = new URLSearchParams(await readBody(ctx.req));
      if (form.get('client_secret') !== rotatedSecret) {
        const grantType = form.get('grant_type');
        if (grantType) stats.byGrant[grantType] = (stats.byGrant[grantType] ?? 0) + 1;
        ctx.status = 401;
        ctx.body = { error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] };
        return;
      }
      form.set('client_secret', clientSecret);
      // oidc-provider takes an already-read body from req.body.
      (ctx.req as IncomingMessage & { body?: string }).body = form.toString();
    }
    await next();

    const grantType = ctx.oidc?.params?.grant_type;
    if (grantType) stats.byGrant[grantType] = (stats.byGrant[grantType] ?? 0) + 1;

    if (ctx.status >= 400 && isErrorBody(ctx.body)) {
      const detail = typeof ctx.state.errorDetail === 'string' ? ctx.state.errorDetail : undefined;
      ctx.body = entraErrorBody(ctx.body, detail);
    } else if (ctx.status === 200 && typeof ctx.body === 'object' && ctx.body !== null) {
      const body = ctx.body as Record<string, unknown>;
      if (typeof body.expires_in === 'number') body.ext_expires_in = body.expires_in;
      if (typeof body.access_token === 'string') issued.accessTokens.push(body.access_token);
      if (typeof body.refresh_token === 'string') issued.refreshTokens.push(body.refresh_token);
      if (typeof body.id_token === 'string') issued.idTokens.push(body.id_token);
    }
  }

  provider.use(async (ctx, next) => {
    const interaction = INTERACTION_ROUTE.exec(ctx.path);
    if (interaction) {
      await handleInteraction(ctx, interaction[2]);
      return;
    }

    // Strip the tenant segment, and record the original URL: oidc-provider
    // derives its mount path from `req.originalUrl`, so the URLs it generates
    // (interaction resume, discovery) keep the tenant the client used.
    const tenantRoute = TENANT_ROUTE.exec(ctx.path);
    const tenantDiscovery = tenantRoute ? null : TENANT_DISCOVERY.exec(ctx.path);
    const tenant = tenantRoute?.[1] ?? tenantDiscovery?.[1];
    const rest = tenantRoute?.[2] ?? (tenantDiscovery ? '/.well-known/openid-configuration' : undefined);
    if (rest !== undefined) ctx.url = `${rest}${ctx.querystring ? `?${ctx.querystring}` : ''}`;

    if (ctx.path === ROUTES.authorization && ctx.method === 'GET') adjustAuthorizationQuery(ctx);

    // Last, because oidc-provider finds the mount path by locating the
    // (final, rewritten) request URL inside the original one.
    if (tenant !== undefined) ctx.req.originalUrl = `/${tenant}${ctx.url}`;

    if (ctx.path === ROUTES.token && ctx.method === 'POST') {
      await handleToken(ctx, next);
      return;
    }

    await next();
  });

  const callback = provider.callback();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    callback(req, res);
  });

  async function login(authorizeUrl: string, loginOpts: LoginOptions = {}): Promise<string> {
    const start = new URL(authorizeUrl);
    const redirectUri = start.searchParams.get('redirect_uri');
    const jar = new CookieJar();
    let url = start;
    let init: RequestInit = { method: 'GET' };

    for (let hop = 0; hop < 20; hop += 1) {
      const headers = new Headers(init.headers);
      const cookie = jar.header(url);
      if (cookie) headers.set('cookie', cookie);
      const res = await fetch(url, { ...init, headers, redirect: 'manual' });
      jar.store(url, res.headers.getSetCookie());

      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        const next = new URL(location, url);
        const isCallback = next.origin !== start.origin || (redirectUri !== null && `${next.origin}${next.pathname}` === redirectUri.split(/[?#]/)[0]);
        if (isCallback) return next.href;
        url = next;
        init = { method: 'GET' };
        continue;
      }

      const text = await res.text();
      const action = /<form id="login-form" method="post" action="([^"]+)"/.exec(text)?.[1];
      if (res.status === 200 && action) {
        const target = loginOpts.cancel ? action.replace(/\/login$/, '/abort') : action;
        url = new URL(target.replace(/&amp;/g, '&'), url);
        init = {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ username: loginOpts.username ?? 'testuser', password: 'password' }).toString(),
        };
        continue;
      }
      throw new Error(`entra login: unexpected HTTP ${res.status} from ${url.href}: ${text.slice(0, 500)}`);
    }
    throw new Error('entra login: too many redirects');
  }

  return {
    authority,
    issuer,
    clientId,
    clientSecret,
    tid,
    tenant: 'consumers',
    port,
    authorizeUrl: (tenant = 'consumers') => `${authority}/${tenant}${ROUTES.authorization}`,
    tokenUrl: (tenant = 'consumers') => `${authority}/${tenant}${ROUTES.token}`,
    login,
    stats: () => ({ ...stats, byGrant: { ...stats.byGrant } }),
    resetStats: () => {
      stats = freshStats();
      grantErrors = [];
    },
    issued: () => ({ accessTokens: [...issued.accessTokens], refreshTokens: [...issued.refreshTokens], idTokens: [...issued.idTokens] }),
    grantErrors: () => [...grantErrors],
    failNext: (n, failure) => {
      // n = 0 clears what is still queued, so a test cannot leave failures behind for the next one.
      if (n === 0) failures.length = 0;
      for (let i = 0; i < n; i += 1) failures.push({ ...failure });
    },
    setTokenDelay: (ms) => {
      tokenDelayMs = ms;
    },
    setAccessTokenTtl: (seconds) => {
      accessTokenTtl = seconds;
    },
    setReuseGraceMs: (ms) => {
      store.reuseGraceMs = ms;
    },
    setRedirectUris: (uris) => {
      redirectUris = new Set(uris);
    },
    addRedirectUri: (uri) => {
      redirectUris.add(uri);
    },
    rotateClientSecret: (secret) => {
      rotatedSecret = secret;
    },
    revokeAllGrants: () => {
      for (const model of ['Grant', 'AccessToken', 'RefreshToken', 'AuthorizationCode']) store.model(model).clear();
    },
    account: (username) => {
      const { sub, oid, preferredUsername } = accountFor(username);
      return { sub, oid, preferredUsername };
    },
    close: async () => {
      if (closed) return;
      closed = true;
      for (const entry of [...pending]) entry.resolve();
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      await done;
    },
  };
}
