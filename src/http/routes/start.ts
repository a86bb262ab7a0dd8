import { FETCH_TOKEN_TTL_MS, FetchTokens } from '../../broker/fetch-tokens.ts';
import { DEFAULT_SERVICE_ID, findService } from '../../oauth/services.ts';
import type { Deps, Exchange } from '../exchange.ts';
import { startPage, unknownServicePage } from '../pages.ts';
import { page, setCookie } from '../respond.ts';

/** GET / (`?type=<service>`, `?token=<Duplicati fetch token>`): pick the service, enter the passcode. */
export async function start(x: Exchange, { broker }: Deps): Promise<Response> {
  const type = x.url.searchParams.get('type');
  const token = x.url.searchParams.get('token');
  // A fetch token hands the new authid to whoever polls /fetch with it, so it is
  // honoured only when Duplicati's own page (an allowed origin) opened this one,
  // and it is bound to this browser by a cookie that POST /login must present.
  const fetchToken =
    FetchTokens.valid(token) && fromAllowedOrigin(x.req, broker.ctx.config.allowedOrigins) && (await broker.fetchTokens.register(token, x.client))
      ? token
      : undefined;
  const services = broker.login.services(type);
  if (type !== null && (!findService(type) || services[0]?.id !== type)) {
    // A known type whose provider has no app here gets a page that names the provider.
    const known = findService(type);
    return page(
      x,
      broker.ctx.config,
      404,
      unknownServicePage({ nonce: x.nonce, requested: type, provider: known?.provider.name, services: broker.login.services() }),
    );
  }
  const res = page(
    x,
    broker.ctx.config,
    200,
    startPage({ nonce: x.nonce, services, selected: type ?? DEFAULT_SERVICE_ID, fetchToken, filter: type ?? undefined }),
  );
  if (fetchToken) setCookie(res, broker.ctx.config, 'fetch', FetchTokens.cookieValue(fetchToken), FETCH_TOKEN_TTL_MS / 1000);
  return res;
}

/** The page that opened this one, by Origin or Referer (browsers send at least the origin on cross-origin navigations). */
function fromAllowedOrigin(req: Request, allowedOrigins: readonly string[]): boolean {
  const source = req.headers.get('origin') ?? req.headers.get('referer');
  if (!source) return false;
  try {
    return allowedOrigins.includes(new URL(source).origin);
  } catch {
    return false;
  }
}
