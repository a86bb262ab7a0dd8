import type { AccessToken } from '../../broker/tokens.ts';
import { asBrokerError } from '../../errors.ts';
import type { Deps, Exchange } from '../exchange.ts';
import { startUrl } from '../pages.ts';
import { authIdFrom, missingAuthId, NO_FORM, readForm, wantsPlainText } from '../request.ts';
import { answer, NO_STORE, redirect, TYPE } from '../respond.ts';

/** Varies by Accept (JSON or the bare token); `pragma` for HTTP/1.0 caches on the way. */
const TOKEN_HEADERS = { pragma: 'no-cache', vary: 'Accept' };
/** The whole header set of a JSON token answer, built once (a cache hit is the hot path). */
const TOKEN_JSON_HEADERS: Readonly<Record<string, string>> = { ...NO_STORE, ...TOKEN_HEADERS, 'content-type': TYPE.json };

/**
 * A token's JSON answer, made once per token and second: a cached token is one
 * object for its whole life, and only `expires` (whole seconds left) changes.
 * Same text as JSON.stringify of {access_token, expires, type, token_type, expires_at}.
 */
interface Body {
  head: string;
  tail: string;
  expires: number;
  text: string;
}
const bodies = new WeakMap<AccessToken, Body>();
function bodyOf(token: AccessToken, expires: number): string {
  let b = bodies.get(token);
  if (!b) {
    b = {
      head: `{"access_token":${JSON.stringify(token.accessToken)},"expires":`,
      tail: `,"type":${JSON.stringify(token.service)},"token_type":"Bearer","expires_at":"${new Date(token.expiresAt).toISOString()}"}`,
      expires: -1,
      text: '',
    };
    bodies.set(token, b);
  }
  if (b.expires !== expires) {
    b.expires = expires;
    b.text = `${b.head}${expires}${b.tail}`;
  }
  return b.text;
}

/**
 * GET/POST /refresh: an access token for an authid, as JSON
 * (`access_token`, `expires` in seconds, `type`, `token_type`, `expires_at`) or,
 * with `Accept: text/plain`, the bare token.
 *
 * The usual request (a GET with X-AuthID whose token is in memory) is answered
 * without awaiting anything; everything else, and every failure, takes `obtain`.
 */
export function refresh(x: Exchange, deps: Deps): Response | Promise<Response> {
  if (x.method === 'GET') {
    const header = x.req.headers.get('x-authid');
    const token = header ? deps.broker.tokens.cachedToken(header) : null;
    if (token) return tokenAnswer(x, deps, token);
  }
  return obtain(x, deps);
}

async function obtain(x: Exchange, deps: Deps): Promise<Response> {
  const form = x.method === 'POST' ? await readForm(x.req) : NO_FORM;
  const authid = authIdFrom(x.req, () => x.url, form);
  if (!authid) {
    // Duplicati's new UI opens `<oauth-url>?type=…`; with --oauth-url=…/refresh that is this route.
    const type = x.url.searchParams.get('type');
    if (type !== null && x.method === 'GET') return redirect(startUrl(type));
    throw missingAuthId('Send it in the X-AuthID header (or the authid field, or Authorization: Bearer).');
  }
  let token: AccessToken;
  try {
    token = await deps.broker.tokens.getAccessToken(authid, x.client);
  } catch (e) {
    deps.onRefresh?.(failureOutcome(asBrokerError(e).code));
    throw e;
  }
  return tokenAnswer(x, deps, token);
}

function tokenAnswer(x: Exchange, { now, onRefresh }: Deps, token: AccessToken): Response {
  onRefresh?.(SOURCE_OUTCOME[token.source]);
  x.keyid = token.keyid;
  if (wantsPlainText(x.req)) return answer(token.accessToken, 200, TYPE.text, TOKEN_HEADERS);
  return new Response(bodyOf(token, Math.max(0, Math.floor((token.expiresAt - now()) / 1000))), { status: 200, headers: TOKEN_JSON_HEADERS });
}

/** Token-request outcomes as metrics name them. */
const SOURCE_OUTCOME: Record<AccessToken['source'], string> = { cache: 'cache_hit', store: 'cache_hit', refreshed: 'refreshed', stale: 'stale_served' };

function failureOutcome(code: string): string {
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
