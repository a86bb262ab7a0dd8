import { randomBytes } from 'node:crypto';
import type { Broker } from '../broker/broker.ts';
import { short, type AccessToken } from '../broker/tokens.ts';
import { asBrokerError, BrokerError } from '../errors.ts';
import { FetchTokens } from '../broker/fetch-tokens.ts';
import { connectionWarnings, idleExpiresAt, secretWarning } from '../broker/lifecycle.ts';
import { DEFAULT_SERVICE_ID, findService, MICROSOFT } from '../oauth/services.ts';
import { describe, errorHeaders, HTTP_STATUS, jsonError } from './errors.ts';
import { loggedInPage, messagePage, revokePage, startPage, unknownServicePage } from './pages.ts';
import { authIdFrom, field, readForm } from './request.ts';

export interface RequestLog {
  method: string;
  route: string;
  status: number;
  ms: number;
  keyid?: string;
  error?: string;
}

export interface AppOptions {
  broker: Broker;
  version: string;
  log?: (entry: RequestLog) => void;
  now?: () => number;
  /** Counts token requests by outcome (metrics). */
  onRefresh?: (outcome: string) => void;
}

/** Token-request outcomes as metrics name them. */
function refreshOutcome(code: string): string {
  switch (code) {
    case 'login_required':
    case 'app_misconfigured':
      return code;
    case 'upstream_error':
    case 'upstream_timeout':
      return 'upstream_error';
    default:
      return 'rejected';
  }
}

/** Per-request facts the handlers need besides the Request. */
export interface ClientInfo {
  address: string;
}

interface Exchange {
  req: Request;
  url: URL;
  client: ClientInfo;
  nonce: string;
  /** Set by handlers that learn the keyid, for the request log (first characters only). */
  keyid?: string;
}

type Handler = (x: Exchange) => Promise<Response> | Response;

const KNOWN_ROUTES = new Set(['/', '/login', '/logged-in', '/refresh', '/fetch', '/status', '/revoke', '/revoked', '/healthz']);
/** A JavaScript identifier path such as `angular.callbacks._0`: nothing else may name a JSONP callback. */
const JSONP_CALLBACK = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$/;

/**
 * The whole HTTP surface as a plain `Request → Response` function: routes, pages
 * and the one error mapping. server.ts binds it to a socket; tests call it directly.
 */
export function createApp(opts: AppOptions): (req: Request, client?: ClientInfo) => Promise<Response> {
  const { broker } = opts;
  const now = opts.now ?? Date.now;
  // Read per request, never kept: `broker.reconfigure` (a settings reload) swaps it.
  const settings = () => broker.ctx.config;
  const secureCookie = () => settings().publicUrl.startsWith('https://');
  const cookieName = () => (secureCookie() ? '__Host-broker_login' : 'broker_login');
  const fetchCookieName = () => (secureCookie() ? '__Host-broker_fetch' : 'broker_fetch');

  const routes: Record<string, Partial<Record<string, Handler>>> = {
    '/': { GET: start, HEAD: start },
    '/login': { GET: loginGet, POST: loginPost },
    '/logged-in': { GET: loggedIn },
    '/refresh': { GET: refresh, POST: refresh },
    '/fetch': { GET: fetchAuthId },
    '/status': { GET: status },
    '/revoke': { GET: revokeForm, HEAD: revokeForm, POST: revoke },
    '/revoked': { POST: revoke },
    '/healthz': { GET: healthz, HEAD: healthz },
  };

  function start(x: Exchange): Response {
    const type = x.url.searchParams.get('type');
    const token = x.url.searchParams.get('token');
    // A fetch token hands the new authid to whoever polls /fetch with it, so it is
    // honoured only when Duplicati's own page (an allowed origin) opened this one,
    // and it is bound to this browser by a cookie that POST /login must present.
    const fetchToken = FetchTokens.valid(token) && fromAllowedOrigin(x.req) && broker.fetchTokens.register(token, x.client) ? token : undefined;
    if (type !== null && !findService(type)) {
      return html(x, 404, unknownServicePage({ nonce: x.nonce, requested: type, services: broker.login.services() }));
    }
    const services = type ? broker.login.services().filter((s) => s.id === type) : broker.login.services();
    const res = html(x, 200, startPage({ nonce: x.nonce, services, selected: type ?? DEFAULT_SERVICE_ID, fetchToken, filter: type ?? undefined }));
    if (fetchToken) {
      res.headers.append(
        'set-cookie',
        new Bun.Cookie(fetchCookieName(), FetchTokens.cookieValue(fetchToken), {
          httpOnly: true,
          sameSite: 'lax',
          secure: secureCookie(),
          path: '/',
          maxAge: 300,
        }).serialize(),
      );
    }
    return res;
  }

  /** The page that opened this one, by Origin or Referer (browsers send at least the origin on cross-origin navigations). */
  function fromAllowedOrigin(req: Request): boolean {
    const source = req.headers.get('origin') ?? req.headers.get('referer');
    if (!source) return false;
    try {
      return settings().allowedOrigins.includes(new URL(source).origin);
    } catch {
      return false;
    }
  }

  /**
   * A form post from another site is refused before it can count as a wrong
   * passcode: otherwise any page the owner visits could lock them out.
   */
  function assertSameSiteForm(req: Request): void {
    const site = req.headers.get('sec-fetch-site');
    const origin = req.headers.get('origin');
    const { publicUrl } = settings();
    const ours = new URL(publicUrl).origin;
    const otherSite = site !== null && site !== 'same-origin' && site !== 'none';
    // `Origin: null` comes from sandboxed frames, data: URLs and cross-site redirects
    // (and, same-site, from privacy settings): only Sec-Fetch-Site can vouch for it.
    const otherOrigin = origin !== null && origin !== ours && !(origin === 'null' && site !== null);
    if (otherSite || otherOrigin) {
      throw new BrokerError('invalid_request', "This form must be sent from the broker's own start page.", { hint: `Open ${publicUrl}/ and try again.` });
    }
  }

  function loginGet(x: Exchange): Response {
    // The passcode is never taken from a URL; send the browser to the form for this service.
    const id = x.url.searchParams.get('id');
    const to = id && findService(id) ? `/?type=${encodeURIComponent(id)}` : '/';
    return redirect(to);
  }

  async function loginPost(x: Exchange): Promise<Response> {
    assertSameSiteForm(x.req);
    const form = await readForm(x.req);
    const serviceId = field(form, 'id', 64) || DEFAULT_SERVICE_ID;
    const passcode = field(form, 'passcode', 1024) ?? '';
    const token = field(form, 'token', 256);
    const cookies = new Bun.CookieMap(x.req.headers.get('cookie') ?? '');
    const fetchToken = token !== null && FetchTokens.cookieMatches(token, cookies.get(fetchCookieName())) ? token : undefined;
    const filter = field(form, 'type', 64);
    const all = broker.login.services();
    const services = filter && all.some((s) => s.id === filter) ? all.filter((s) => s.id === filter) : all;
    try {
      const started = await broker.login.start({ serviceId, passcode, client: x.client.address, extra: fetchToken });
      const res = redirect(started.authorizeUrl);
      res.headers.append(
        'set-cookie',
        new Bun.Cookie(cookieName(), started.cookieValue, {
          httpOnly: true,
          // Lax, not Strict: the callback is a top-level navigation from Microsoft's site.
          sameSite: 'lax',
          secure: secureCookie(),
          path: '/',
          maxAge: started.maxAgeSeconds,
        }).serialize(),
      );
      return res;
    } catch (err) {
      const e = asBrokerError(err);
      if (e.code === 'unknown_service') return html(x, 404, unknownServicePage({ nonce: x.nonce, requested: serviceId, services: all }), e);
      if (e.code === 'passcode_invalid' || e.code === 'rate_limited') {
        const page = startPage({ nonce: x.nonce, services, selected: serviceId, error: describe(e), fetchToken, filter: filter ?? undefined });
        return html(x, HTTP_STATUS[e.code], page, e);
      }
      throw e;
    }
  }

  async function loggedIn(x: Exchange): Promise<Response> {
    const q = x.url.searchParams;
    const cookieValue = new Bun.CookieMap(x.req.headers.get('cookie') ?? '').get(cookieName());
    const result = await broker.login.finish({ state: q.get('state'), code: q.get('code'), error: q.get('error'), cookieValue });
    x.keyid = result.keyid;
    if (result.extra) broker.fetchTokens.attach(result.extra, result.authid);
    const config = settings();
    const page = loggedInPage({
      nonce: x.nonce,
      authid: result.authid,
      keyid: result.keyid,
      service: result.service,
      account: result.account,
      publicUrl: config.publicUrl,
      allowedOrigins: config.allowedOrigins,
    });
    const res = html(x, 200, page);
    res.headers.append(
      'set-cookie',
      new Bun.Cookie(cookieName(), '', { path: '/', maxAge: 0, httpOnly: true, secure: secureCookie(), sameSite: 'lax' }).serialize(),
    );
    return res;
  }

  async function refresh(x: Exchange): Promise<Response> {
    const form = await readForm(x.req);
    const authid = authIdFrom(x.req, x.url, form);
    if (!authid) {
      // Duplicati's new UI opens `<oauth-url>?type=…`; with --oauth-url=…/refresh that is this route.
      const type = x.url.searchParams.get('type');
      if (type !== null && x.req.method === 'GET') return redirect(`/?type=${encodeURIComponent(type)}`);
      throw new BrokerError('authid_missing', 'No AuthID in the request.', {
        hint: 'Send it in the X-AuthID header (or the authid field, or Authorization: Bearer).',
      });
    }
    let token: AccessToken;
    try {
      token = await broker.tokens.getAccessToken(authid, x.client);
    } catch (e) {
      opts.onRefresh?.(refreshOutcome(asBrokerError(e).code));
      throw e;
    }
    opts.onRefresh?.(token.source === 'refreshed' ? 'refreshed' : token.source === 'stale' ? 'stale_served' : 'cache_hit');
    x.keyid = token.keyid;
    const expires = Math.max(0, Math.floor((token.expiresAt - now()) / 1000));
    const headers = new Headers({ 'cache-control': 'no-store', pragma: 'no-cache', vary: 'Accept' });
    if (wantsPlainText(x.req)) {
      headers.set('content-type', 'text/plain; charset=utf-8');
      return new Response(token.accessToken, { headers });
    }
    headers.set('content-type', 'application/json; charset=utf-8');
    const body = {
      access_token: token.accessToken,
      expires,
      type: token.service,
      token_type: 'Bearer',
      expires_at: new Date(token.expiresAt).toISOString(),
    };
    return new Response(JSON.stringify(body), { headers });
  }

  /** Legacy Duplicati UI polling: always 200, JSON or JSONP, as the original service answered. */
  function fetchAuthId(x: Exchange): Response {
    const q = x.url.searchParams;
    const callback = q.get('callback') || q.get('jsonp');
    if (callback !== null && (callback.length > 128 || !JSONP_CALLBACK.test(callback))) {
      throw new BrokerError('invalid_request', 'The JSONP callback must be a JavaScript identifier path such as angular.callbacks._0.');
    }
    const state = broker.fetchTokens.take(q.get('token'));
    const body =
      state.kind === 'missing'
        ? { error: 'Missing token' }
        : state.kind === 'unknown'
          ? { error: 'No such entry' }
          : state.kind === 'wait'
            ? { wait: 'Not ready' }
            : { authid: state.authid };
    const text = JSON.stringify(body);
    const headers = new Headers({ 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    if (callback) {
      headers.set('content-type', 'application/javascript; charset=utf-8');
      // The leading comment defeats content sniffing tricks that abuse JSONP (e.g. Rosetta Flash).
      return new Response(`/**/${callback}(${text});`, { headers });
    }
    headers.set('content-type', 'application/json; charset=utf-8');
    return new Response(text, { headers });
  }

  function revokeForm(x: Exchange): Response {
    return html(x, 200, revokePage({ nonce: x.nonce, consentUrl: MICROSOFT.consentManagementUrl }));
  }

  async function revoke(x: Exchange): Promise<Response> {
    const form = await readForm(x.req);
    const authid = x.req.headers.get('x-authid') || field(form, 'authid', 600);
    const browser = wantsHtml(x.req);
    try {
      if (!authid) throw new BrokerError('authid_missing', 'No AuthID in the request.', { hint: 'Send it in the X-AuthID header or the authid form field.' });
      const r = broker.revokeWithAuthId(authid, x.client.address);
      x.keyid = r.keyid;
      const text = r.alreadyRevoked ? 'This AuthID was already revoked.' : 'The AuthID is revoked; the connection is deleted.';
      if (browser) return html(x, 200, revokePage({ nonce: x.nonce, consentUrl: MICROSOFT.consentManagementUrl, done: text }));
      return json({ revoked: true, keyid: r.keyid, already_revoked: r.alreadyRevoked }, 200);
    } catch (err) {
      const e = asBrokerError(err);
      if (!browser || HTTP_STATUS[e.code] >= 500) throw e;
      return html(x, HTTP_STATUS[e.code], revokePage({ nonce: x.nonce, consentUrl: MICROSOFT.consentManagementUrl, error: describe(e) }), e);
    }
  }

  /** What the holder of an authid may know about its connection, including the sealed account name. */
  function status(x: Exchange): Response {
    const authid = authIdFrom(x.req, x.url, new URLSearchParams());
    if (!authid) throw new BrokerError('authid_missing', 'No AuthID in the request.', { hint: 'Send it in the X-AuthID header.' });
    const { id, keys, record } = broker.tokens.authenticate(authid, x.client.address);
    x.keyid = id.keyid;
    const grant = broker.tokens.open(keys, id.keyid);
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return json(
      {
        keyid: record.keyid,
        service: record.service,
        state: record.state,
        created_at: iso(record.createdAt),
        last_refresh_at: iso(record.lastRefreshAt),
        last_used_at: iso(record.lastUsedAt),
        idle_expires_at: record.state === 'active' ? iso(idleExpiresAt(record)) : null,
        account: grant ? { username: grant.account.username ?? null, name: grant.account.name ?? null, tenant_id: grant.account.tid } : null,
        warnings: connectionWarnings(record, now()),
      },
      200,
    );
  }

  function healthz(): Response {
    const warnings: string[] = [];
    const secret = secretWarning(settings().secretExpires, now());
    if (secret) warnings.push(secret);
    const unsaved = broker.tokens.unsavedCount();
    if (unsaved) {
      warnings.push(
        `${unsaved === 1 ? "1 connection's newest refresh token is" : `${unsaved} connections' newest refresh tokens are`} held only in memory (the store could not be written): make BROKER_HOME writable and do not restart the broker until the next request of each saves it.`,
      );
    }
    return json({ status: 'ok', version: opts.version, warnings }, 200);
  }

  function html(x: Exchange, status: number, body: string, err?: BrokerError): Response {
    const headers = pageHeaders(x.nonce, new URL(settings().authority).origin);
    if (err) for (const [k, v] of errorHeaders(err)) headers.set(k, v);
    return new Response(x.req.method === 'HEAD' ? null : body, { status, headers });
  }

  function errorPage(x: Exchange, e: BrokerError): Response {
    const status = HTTP_STATUS[e.code];
    const title = e.code === 'login_state_invalid' || e.code === 'login_failed' ? 'Login not completed' : 'Something went wrong';
    return html(x, status, messagePage({ nonce: x.nonce, title, message: e.message, detail: e.hint, isError: true }), e);
  }

  return async function handle(req: Request, client: ClientInfo = { address: 'unknown' }): Promise<Response> {
    const t0 = performance.now();
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      url = new URL('http://invalid/');
    }
    const route = KNOWN_ROUTES.has(url.pathname) ? url.pathname : 'other';
    // The CSP nonce is for pages; JSON answers (/refresh) never need one.
    let nonce: string | undefined;
    const x: Exchange = {
      req,
      url,
      client,
      get nonce() {
        return (nonce ??= randomBytes(16).toString('base64'));
      },
    };
    let res: Response;
    let error: string | undefined;
    try {
      const methods = routes[url.pathname];
      if (!methods) throw new BrokerError('not_found', 'There is no such page on this broker.');
      const handler = methods[req.method];
      if (!handler) throw new BrokerError('method_not_allowed', `${route} does not accept ${req.method.slice(0, 10)}.`);
      res = await handler(x);
    } catch (err) {
      const e = asBrokerError(err);
      error = e.code;
      if (e.code === 'internal')
        opts.log?.({ method: req.method, route, status: 500, ms: 0, error: `internal: ${String((e.cause as Error)?.stack ?? e.cause)}` });
      res = isPageRoute(url.pathname) && wantsHtml(req) ? errorPage(x, e) : jsonError(e);
    }
    opts.log?.({
      method: req.method.slice(0, 10),
      route,
      status: res.status,
      ms: Math.round((performance.now() - t0) * 100) / 100,
      keyid: x.keyid ? short(x.keyid) : undefined,
      error,
    });
    return res;
  };
}

function isPageRoute(path: string): boolean {
  return path === '/' || path === '/login' || path === '/logged-in' || path === '/revoke' || path === '/revoked';
}

function wantsHtml(req: Request): boolean {
  return (req.headers.get('accept') ?? '').includes('text/html');
}

function wantsPlainText(req: Request): boolean {
  const accept = (req.headers.get('accept') ?? '').toLowerCase();
  return accept.includes('text/plain') && !accept.includes('application/json');
}

function redirect(location: string): Response {
  return new Response(null, { status: 302, headers: { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' } });
}

function json(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}

/** Pages may show an authid or take a passcode: never cached, never framed, never referred. */
function pageHeaders(nonce: string, authorityOrigin: string): Headers {
  return new Headers({
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src 'nonce-${nonce}'`,
      "img-src 'self' data:",
      // The login form's answer redirects to Microsoft; browsers check form-action on that redirect.
      `form-action 'self' ${authorityOrigin}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
}
