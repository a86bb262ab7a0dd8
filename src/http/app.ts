import { randomBytes } from 'node:crypto';
import type { Broker } from '../broker/broker.ts';
import { short } from '../broker/tokens.ts';
import { asBrokerError, BrokerError } from '../errors.ts';
import { HTTP_STATUS } from './errors.ts';
import type { ClientInfo, Deps, Exchange, Handler } from './exchange.ts';
import { messagePage } from './pages.ts';
import { wantsHtml } from './request.ts';
import { jsonError, page } from './respond.ts';
import { fetchAuthId } from './routes/fetch.ts';
import { loggedIn, loginGet, loginPost } from './routes/login.ts';
import { refresh } from './routes/refresh.ts';
import { revoke, revokeForm } from './routes/revoke.ts';
import { start } from './routes/start.ts';
import { healthz, status } from './routes/status.ts';

export type { ClientInfo } from './exchange.ts';

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

interface Route {
  /** The handler of each method; a 405's Allow header lists these. */
  methods: Partial<Record<string, Handler>>;
  /** Browsers get errors here as a page (their user is looking at one), everyone else as JSON. */
  page?: true;
}

/** The HTTP surface: each path, its methods, and the file that answers (src/http/routes/). */
const ROUTES: Readonly<Record<string, Route>> = {
  '/': { page: true, methods: { GET: start, HEAD: start } },
  '/login': { page: true, methods: { GET: loginGet, POST: loginPost } },
  '/logged-in': { page: true, methods: { GET: loggedIn } },
  '/refresh': { methods: { GET: refresh, POST: refresh } },
  '/fetch': { methods: { GET: fetchAuthId } },
  '/status': { methods: { GET: status } },
  '/revoke': { page: true, methods: { GET: revokeForm, HEAD: revokeForm, POST: revoke } },
  '/revoked': { page: true, methods: { POST: revoke } },
  '/healthz': { methods: { GET: healthz, HEAD: healthz } },
};

/**
 * The whole HTTP surface as a plain `Request → Response` function: the route
 * table above, and the one mapping of errors to answers. server.ts binds it to a
 * socket; tests call it directly.
 */
export function createApp(opts: AppOptions): (req: Request, client?: ClientInfo) => Response | Promise<Response> {
  const deps: Deps = { broker: opts.broker, version: opts.version, now: opts.now ?? Date.now, onRefresh: opts.onRefresh };

  // Not async: a handler that answers at once (a cache hit) is answered without a turn of the event loop.
  return function handle(req: Request, client: ClientInfo = { address: 'unknown' }): Response | Promise<Response> {
    const x = new RequestExchange(req, client, performance.now());
    const raw = rawPath(req.url);
    // A path that is exactly a route's name is that route (URL parsing would not change it); anything else is parsed.
    const path = raw !== null && Object.hasOwn(ROUTES, raw) ? raw : x.url.pathname;
    const found = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    x.route = found ? path : 'other';
    let res: Response | Promise<Response>;
    try {
      if (!found) throw new BrokerError('not_found', 'There is no such page on this broker.');
      const handler = Object.hasOwn(found.methods, x.method) ? found.methods[x.method] : undefined;
      if (!handler) throw new BrokerError('method_not_allowed', `${x.route} does not accept ${x.method.slice(0, 10)}.`);
      res = handler(x, deps);
    } catch (err) {
      return logged(x, failed(x, found, err));
    }
    return res instanceof Promise
      ? res.then(
          (r) => logged(x, r),
          (err: unknown) => logged(x, failed(x, found, err)),
        )
      : logged(x, res);
  };

  /** The one mapping of errors to answers: a page where a person is looking at one, else JSON. */
  function failed(x: RequestExchange, found: Route | undefined, err: unknown): Response {
    const e = asBrokerError(err);
    x.error = e.code;
    if (e.code === 'internal')
      opts.log?.({ method: x.method, route: x.route, status: 500, ms: 0, error: `internal: ${String((e.cause as Error)?.stack ?? e.cause)}` });
    const res = found?.page && wantsHtml(x.req) ? errorPage(x, deps, e) : jsonError(e);
    if (e.code === 'method_not_allowed' && found) res.headers.set('allow', Object.keys(found.methods).join(', '));
    return res;
  }

  function logged(x: RequestExchange, res: Response): Response {
    opts.log?.({
      method: x.method.slice(0, 10),
      route: x.route,
      status: res.status,
      ms: Math.round((performance.now() - x.started) * 100) / 100,
      keyid: x.keyid ? short(x.keyid) : undefined,
      error: x.error,
    });
    return res;
  }
}

/**
 * One request as the handlers see it. A class, not an object literal: its
 * getters live on the prototype, so a request costs one small allocation. The
 * URL is parsed only when a handler reads it (a query, a redirect): /refresh
 * with a header never does; the CSP nonce is made only for pages.
 */
class RequestExchange implements Exchange {
  readonly method: string;
  route = 'other';
  keyid?: string;
  error?: string;
  private parsed?: URL;
  private madeNonce?: string;

  constructor(
    readonly req: Request,
    readonly client: ClientInfo,
    readonly started: number,
  ) {
    this.method = req.method;
  }

  get url(): URL {
    return (this.parsed ??= parseUrl(this.req.url));
  }

  get nonce(): string {
    return (this.madeNonce ??= randomBytes(16).toString('base64'));
  }
}

function parseUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    return new URL('http://invalid/');
  }
}

/**
 * The path of an absolute request URL as the client sent it (`http://host:port/path?query`),
 * without parsing it: null when it does not look like one. Only used to recognise a
 * route's exact name; anything else goes through `new URL`.
 */
export function rawPath(text: string): string | null {
  const scheme = text.indexOf('://');
  if (scheme < 0) return null;
  const slash = text.indexOf('/', scheme + 3);
  if (slash < 0) return null;
  // Where a URL parser would end the host earlier, this is not the path.
  for (let i = scheme + 3; i < slash; i++) {
    const c = text.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */ || c === 92 /* \ */) return null;
  }
  let end = text.length;
  for (let i = slash; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  return text.slice(slash, end);
}

function errorPage(x: Exchange, { broker }: Deps, e: BrokerError): Response {
  const title = e.code === 'login_state_invalid' || e.code === 'login_failed' ? 'Login not completed' : 'Something went wrong';
  return page(x, broker.ctx.config, HTTP_STATUS[e.code], messagePage({ nonce: x.nonce, title, message: e.message, detail: e.hint, isError: true }), e);
}
