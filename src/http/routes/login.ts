import { asBrokerError, BrokerError } from '../../errors.ts';
import { FetchTokens } from '../../broker/fetch-tokens.ts';
import { DEFAULT_SERVICE_ID, findService } from '../../oauth/services.ts';
import { describe, HTTP_STATUS } from '../errors.ts';
import type { Deps, Exchange } from '../exchange.ts';
import { loggedInPage, startPage, startUrl, unknownServicePage } from '../pages.ts';
import { field, readForm } from '../request.ts';
import { clearCookie, page, readCookie, redirect, setCookie } from '../respond.ts';

/** GET /login: the passcode is never taken from a URL; send the browser to the form for this service. */
export function loginGet(x: Exchange): Response {
  const id = x.url.searchParams.get('id');
  return redirect(id && findService(id) ? startUrl(id) : '/');
}

/** POST /login: checks the passcode, then 302 to Microsoft with the login's state bound to a cookie. */
export async function loginPost(x: Exchange, { broker }: Deps): Promise<Response> {
  assertSameSiteForm(x.req, broker.ctx.config.publicUrl);
  const form = await readForm(x.req);
  const serviceId = field(form, 'id', 64) || DEFAULT_SERVICE_ID;
  const passcode = field(form, 'passcode', 1024) ?? '';
  const token = field(form, 'token', 256);
  const fetchToken = token !== null && FetchTokens.cookieMatches(token, readCookie(x.req, broker.ctx.config, 'fetch')) ? token : undefined;
  const filter = field(form, 'type', 64);
  const services = broker.login.services(filter);
  try {
    const started = await broker.login.start({ serviceId, passcode, client: x.client.address, extra: fetchToken });
    return setCookie(redirect(started.authorizeUrl), broker.ctx.config, 'login', started.cookieValue, started.maxAgeSeconds);
  } catch (err) {
    const e = asBrokerError(err);
    if (e.code === 'unknown_service') {
      const known = findService(serviceId);
      return page(
        x,
        broker.ctx.config,
        404,
        unknownServicePage({ nonce: x.nonce, requested: serviceId, provider: known?.provider.name, services: broker.login.services() }),
        e,
      );
    }
    if (e.code === 'passcode_invalid' || e.code === 'rate_limited') {
      const again = startPage({ nonce: x.nonce, services, selected: serviceId, error: describe(e), fetchToken, filter: filter ?? undefined });
      return page(x, broker.ctx.config, HTTP_STATUS[e.code], again, e);
    }
    throw e;
  }
}

/** GET /logged-in, the OAuth redirect URI: redeems the code and shows the new authid once. */
export async function loggedIn(x: Exchange, { broker }: Deps): Promise<Response> {
  const q = x.url.searchParams;
  const cookieValue = readCookie(x.req, broker.ctx.config, 'login');
  const result = await broker.login.finish({ state: q.get('state'), code: q.get('code'), error: q.get('error'), cookieValue, hostname: q.get('hostname') });
  x.keyid = result.keyid || undefined;
  if (result.extra) await broker.fetchTokens.attach(result.extra, result.authid);
  const config = broker.ctx.config;
  const body = loggedInPage({
    nonce: x.nonce,
    authid: result.authid,
    keyid: result.keyid,
    service: result.service,
    account: result.account,
    keptNothing: result.keptNothing,
    publicUrl: config.publicUrl,
    allowedOrigins: config.allowedOrigins,
  });
  return clearCookie(page(x, config, 200, body), config, 'login');
}

/**
 * A form post from another site is refused before it can count as a wrong
 * passcode: otherwise any page the owner visits could lock them out.
 */
function assertSameSiteForm(req: Request, publicUrl: string): void {
  const site = req.headers.get('sec-fetch-site');
  const origin = req.headers.get('origin');
  const ours = new URL(publicUrl).origin;
  const otherSite = site !== null && site !== 'same-origin' && site !== 'none';
  // `Origin: null` comes from sandboxed frames, data: URLs and cross-site redirects
  // (and, same-site, from privacy settings): only Sec-Fetch-Site can vouch for it.
  const otherOrigin = origin !== null && origin !== ours && !(origin === 'null' && site !== null);
  if (otherSite || otherOrigin) {
    throw new BrokerError('invalid_request', "This form must be sent from the broker's own start page.", { hint: `Open ${publicUrl}/ and try again.` });
  }
}
