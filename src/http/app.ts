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
    const t0 = performance.now();
    // The URL object is made only when a handler reads it (a query, a redirect): /refresh with a header never does.
    let url: URL | undefined;
    const parsed = (): URL => (url ??= parseUrl(req.url));
    const raw = rawPath(req.url);
    // A path that is exactly a route's name is that route (URL parsing would not change it); anything else is parsed.
    const path = raw !== null && Object.hasOwn(ROUTES, raw) ? raw : parsed().pathname;
    const found = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    const route = found ? path : 'other';
    // The CSP nonce is for pages; JSON answers (/refresh) never need one.
    let nonce: string | undefined;
    const x: Exchange = {
      req,
      get url() {
        return parsed();
      },
      client,
      get nonce() {
        return (nonce ??= randomBytes(16).toString('base64'));
      },
    };
    let error: string | undefined;
    const failed = (err: unknown): Response => {
      const e = asBrokerError(err);
      error = e.code;
      if (e.code === 'internal')
        opts.log?.({ method: req.method, route, status: 500, ms: 0, error: `internal: ${String((e.cause as Error)?.stack ?? e.cause)}` });
      const res = found?.page && wantsHtml(req) ? errorPage(x, deps, e) : jsonError(e);
      if (e.code === 'method_not_allowed' && found) res.headers.set('allow', Object.keys(found.methods).join(', '));
      return res;
    };
    const done = (res: Response): Response => {
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
    let res: Response | Promise<Response>;
    try {
      if (!found) throw new BrokerError('not_found', 'There is no such page on this broker.');
      const handler = Object.hasOwn(found.methods, req.method) ? found.methods[req.method] : undefined;
      if (!handler) throw new BrokerError('method_not_allowed', `${route} does not accept ${req.method.slice(0, 10)}.`);
      res = handler(x, deps);
    } catch (err) {
      return done(failed(err));
    }
    return res instanceof Promise ? res.then(done, (err: unknown) => done(failed(err))) : done(res);
  };
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
