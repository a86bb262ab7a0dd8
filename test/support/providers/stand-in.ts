/**
 * One small OAuth 2.0 server on loopback, configured to behave like Google,
 * Dropbox, Box or pCloud (see the presets beside it and docs/providers.md for
 * what each models and what it does not). It has no login page: the authorize
 * endpoint consents at once for the user the test names and redirects back.
 *
 * Routes (base = `http://127.0.0.1:<port>`): /authorize, /token (pCloud:
 * /oauth2_token), /revoke.
 */
import { randomBytes } from 'node:crypto';

export type StandInKind = 'google' | 'dropbox' | 'box' | 'pcloud';

export interface StandInBehaviour {
  kind: StandInKind;
  /** What a refresh does to the refresh token: kept (`reusable`), replaced and the old one dead (`single-use`); `none`: there are none. */
  refreshTokens: 'reusable' | 'single-use' | 'none';
  /** Authorize parameters without which no refresh token is issued (Google: access_type=offline; Dropbox: token_access_type=offline). */
  offlineWhen?: Record<string, string>;
  /** Google: a user who consented before gets a refresh token again only with prompt=consent. */
  reconsentParam?: [string, string];
  /** What the user leaves ticked on a granular consent screen (Google): the token's `scope`, whatever was asked. */
  grantedScope?: string;
  /** Scopes enabled on the app (Dropbox's Permissions tab): asking for others fails at authorize. */
  enabledScopes?: readonly string[];
  /** The error answer for a dead grant, as the provider words it. */
  grantError: { status: number; body: Record<string, unknown> };
  /** The error answer for a wrong client id or secret. */
  clientError: { status: number; body: Record<string, unknown> };
  /** Parameters the token endpoint refuses on a refresh (Dropbox: redirect_uri). */
  refusedOnRefresh?: readonly string[];
  revocation: 'token' | 'client-token' | 'bearer-access' | 'none';
  /** Access-token lifetime in seconds; undefined: no `expires_in` (pCloud). */
  accessTokenTtl?: number;
  /** The callback leaves `state` out (pCloud does, for some accounts). */
  dropState?: boolean;
  /** pCloud: the callback names the API host (`hostname`, `locationid`), and errors are HTTP 200 with `result`. */
  hostnameCallback?: boolean;
}

export interface StandInStats {
  /** Token endpoint calls, by grant type. */
  codeRedemptions: number;
  refreshes: number;
  /** A spent single-use refresh token presented again (Box): the grant was killed. */
  reuse: number;
  revocations: number;
  /** Requests the endpoint refused (missing or extra parameters). */
  refused: string[];
}

export interface StandIn {
  kind: StandInKind;
  base: string;
  /** `host:port`, what pCloud's callback names as `hostname`. */
  host: string;
  clientId: string;
  clientSecret: string;
  authorizeUrl: string;
  tokenUrl: string;
  revokeUrl: string;
  stats: StandInStats;
  /** The authorize parameters of the last login. */
  lastAuthorize?: URLSearchParams;
  /** Consents for `username` (default "alice") and returns the callback URL the browser is sent to. */
  login(authorizeUrl: string, opts?: { username?: string }): Promise<string>;
  /** Grants still alive. */
  liveGrants(): number;
  /** Ends every grant, as the provider does after 7 days in Testing (Google) or 60 idle days (Box). */
  expireAll(): void;
  setAccessTokenTtl(s: number): void;
  /** Delay before the token endpoint answers. */
  setTokenDelay(ms: number): void;
  /** The next token-endpoint answers fail with this status and body (`count` times). */
  failNext(status: number, body: Record<string, unknown>, count?: number): void;
  /** The next `count` refreshes are done (a single-use token is spent and a new one issued) but answered 502: an answer lost on the way. */
  loseNextAnswers(count?: number): void;
  resetStats(): void;
  close(): Promise<void>;
}

interface Grant {
  user: string;
  alive: boolean;
  scope: string;
  offline: boolean;
}

const token = (prefix: string) => `${prefix}-${randomBytes(18).toString('base64url')}`;

export async function startStandIn(b: StandInBehaviour, opts: { redirectUri?: (uri: string) => boolean } = {}): Promise<StandIn> {
  const clientId = `${b.kind}-client-${randomBytes(4).toString('hex')}`;
  const clientSecret = `${b.kind}-secret-${randomBytes(12).toString('hex')}`;
  const codes = new Map<string, { grant: Grant; redirectUri: string; challenge?: string }>();
  /** Refresh token → its grant, and whether it was spent (single-use). */
  const refreshTokens = new Map<string, { grant: Grant; spent: boolean }>();
  const accessTokens = new Map<string, Grant>();
  const consented = new Set<string>();
  const stats: StandInStats = { codeRedemptions: 0, refreshes: 0, reuse: 0, revocations: 0, refused: [] };
  let ttl = b.accessTokenTtl;
  let last: URLSearchParams | undefined;
  let delay = 0;
  let lostAnswers = 0;
  let failures: { status: number; body: Record<string, unknown>; count: number } | undefined;
  const tokenPath = b.kind === 'pcloud' ? '/oauth2_token' : '/token';
  const json = (status: number, body: unknown) => Response.json(body, { status, headers: { 'cache-control': 'no-store' } });
  const refuse = (why: string) => {
    stats.refused.push(why);
    return b.hostnameCallback ? json(200, { result: 2000, error: why }) : json(400, { error: 'invalid_request', error_description: why });
  };

  const issue = (grant: Grant, withRefresh: boolean): Record<string, unknown> => {
    const access = token(`${b.kind}-at`);
    accessTokens.set(access, grant);
    const out: Record<string, unknown> = { access_token: access, token_type: b.kind === 'google' ? 'Bearer' : 'bearer' };
    if (ttl !== undefined) out.expires_in = ttl;
    if (b.kind === 'pcloud') Object.assign(out, { result: 0, uid: 4242 });
    if (b.kind === 'google' || b.kind === 'dropbox') out.scope = grant.scope;
    if (b.kind === 'box') out.restricted_to = [];
    if (withRefresh) {
      const rt = token(`${b.kind}-rt`);
      refreshTokens.set(rt, { grant, spent: false });
      out.refresh_token = rt;
    }
    return out;
  };

  const authorize = (url: URL): Response => {
    const q = url.searchParams;
    const redirectUri = q.get('redirect_uri') ?? '';
    if (q.get('client_id') !== clientId) return new Response('unknown client_id', { status: 400 });
    if (!(opts.redirectUri ?? (() => true))(redirectUri)) return new Response('redirect_uri_mismatch', { status: 400 });
    if (q.get('response_type') !== 'code') return new Response('unsupported response_type', { status: 400 });
    const back = new URL(redirectUri);
    const state = q.get('state');
    if (state !== null && !b.dropState) back.searchParams.set('state', state);
    const scope = q.get('scope') ?? '';
    if (b.enabledScopes && scope.split(' ').some((s) => s && !b.enabledScopes!.includes(s))) {
      back.searchParams.set('error', 'invalid_scope');
      return Response.redirect(back.toString(), 302);
    }
    const user = q.get('stand_in_user') ?? 'alice';
    let offline = !b.offlineWhen || Object.entries(b.offlineWhen).every(([k, v]) => q.get(k) === v);
    if (offline && b.reconsentParam && consented.has(user) && q.get(b.reconsentParam[0]) !== b.reconsentParam[1]) offline = false;
    consented.add(user);
    const code = token(`${b.kind}-code`);
    codes.set(code, { grant: { user, alive: true, scope: b.grantedScope ?? scope, offline }, redirectUri, challenge: q.get('code_challenge') ?? undefined });
    back.searchParams.set('code', code);
    if (b.hostnameCallback) {
      back.searchParams.set('locationid', '1');
      back.searchParams.set('hostname', server.url.host);
    }
    return Response.redirect(back.toString(), 302);
  };

  const tokenEndpoint = async (req: Request): Promise<Response> => {
    if (delay) await Bun.sleep(delay);
    const form = new URLSearchParams(req.method === 'POST' ? await req.text() : new URL(req.url).search);
    if (failures && failures.count > 0) {
      failures.count--;
      return json(failures.status, failures.body);
    }
    if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) return json(b.clientError.status, b.clientError.body);
    const grantType = form.get('grant_type') ?? (b.kind === 'pcloud' ? 'authorization_code' : '');
    if (grantType === 'authorization_code') {
      stats.codeRedemptions++;
      if (b.kind === 'dropbox' && form.has('state')) return refuse('state is not accepted at the token endpoint');
      const c = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      if (!c)
        return b.hostnameCallback
          ? json(200, { result: 2012, error: 'Invalid code.' })
          : json(400, { error: 'invalid_grant', error_description: 'Invalid code.' });
      if (b.kind !== 'pcloud' && form.get('redirect_uri') !== c.redirectUri) return refuse('redirect_uri does not match');
      const out = issue(c.grant, b.refreshTokens !== 'none' && c.grant.offline);
      return json(200, out);
    }
    if (grantType === 'refresh_token' && b.refreshTokens !== 'none') {
      stats.refreshes++;
      for (const p of b.refusedOnRefresh ?? []) if (form.has(p)) return refuse(`${p} is not accepted on a refresh`);
      const held = refreshTokens.get(form.get('refresh_token') ?? '');
      if (!held?.grant.alive) return json(b.grantError.status, b.grantError.body);
      if (b.refreshTokens === 'single-use') {
        if (held.spent) {
          // A spent refresh token presented again: Box ends the whole grant.
          stats.reuse++;
          held.grant.alive = false;
          return json(b.grantError.status, b.grantError.body);
        }
        held.spent = true;
        const out = issue(held.grant, true);
        if (lostAnswers > 0) {
          lostAnswers--;
          return json(502, { error: 'temporarily_unavailable' });
        }
        return json(200, out);
      }
      return json(200, issue(held.grant, false));
    }
    return json(400, { error: 'unsupported_grant_type' });
  };

  const revoke = async (req: Request): Promise<Response> => {
    const form = new URLSearchParams(await req.text());
    const url = new URL(req.url);
    let grant: Grant | undefined;
    if (b.revocation === 'bearer-access') {
      const bearer = /^Bearer (.+)$/.exec(req.headers.get('authorization') ?? '')?.[1];
      grant = bearer ? accessTokens.get(bearer) : undefined;
      if (!grant) return json(401, { error_summary: 'invalid_access_token/...', error: { '.tag': 'invalid_access_token' } });
    } else {
      if (b.revocation === 'client-token' && (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret)) {
        return json(b.clientError.status, b.clientError.body);
      }
      const t = form.get('token') ?? url.searchParams.get('token') ?? '';
      grant = refreshTokens.get(t)?.grant ?? accessTokens.get(t);
      if (!grant) return json(400, { error: 'invalid_token', error_description: 'Token expired or revoked' });
    }
    stats.revocations++;
    grant.alive = false;
    return b.revocation === 'bearer-access' ? json(200, null) : new Response(null, { status: 200 });
  };

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (url.pathname === '/authorize' && req.method === 'GET') return authorize(url);
      if (url.pathname === tokenPath) return tokenEndpoint(req);
      if (url.pathname === '/revoke' && req.method === 'POST' && b.revocation !== 'none') return revoke(req);
      return new Response('not found', { status: 404 });
    },
  });
  const base = `http://127.0.0.1:${server.port}`;
  const grants = () => new Set([...refreshTokens.values()].map((r) => r.grant).concat([...accessTokens.values()]));
  return {
    kind: b.kind,
    base,
    host: server.url.host,
    clientId,
    clientSecret,
    authorizeUrl: `${base}/authorize`,
    tokenUrl: `${base}${tokenPath}`,
    revokeUrl: `${base}/revoke`,
    stats,
    get lastAuthorize() {
      return last;
    },
    async login(authorizeUrl, o = {}) {
      const u = new URL(authorizeUrl);
      last = new URLSearchParams(u.search);
      if (o.username) u.searchParams.set('stand_in_user', o.username);
      const res = await fetch(u, { redirect: 'manual' });
      const location = res.headers.get('location');
      if (res.status !== 302 || !location) throw new Error(`authorize answered ${res.status}: ${await res.text()}`);
      return location;
    },
    liveGrants: () => [...grants()].filter((g) => g.alive).length,
    expireAll() {
      for (const g of grants()) g.alive = false;
    },
    setAccessTokenTtl(s) {
      ttl = s;
    },
    setTokenDelay(ms) {
      delay = ms;
    },
    failNext(status, body, count = 1) {
      failures = { status, body, count };
    },
    loseNextAnswers(count = 1) {
      lostAnswers = count;
    },
    resetStats() {
      Object.assign(stats, { codeRedemptions: 0, refreshes: 0, reuse: 0, revocations: 0, refused: [] });
    },
    async close() {
      await server.stop(true);
    },
  };
}
