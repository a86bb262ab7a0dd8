import type { AccessToken } from '../../broker/tokens.ts';
import { asBrokerError } from '../../errors.ts';
import type { Deps, Exchange } from '../exchange.ts';
import { startUrl } from '../pages.ts';
import { authIdFrom, missingAuthId, readForm, wantsPlainText } from '../request.ts';
import { answer, json, redirect, TYPE } from '../respond.ts';

/** Varies by Accept (JSON or the bare token); `pragma` for HTTP/1.0 caches on the way. */
const TOKEN_HEADERS = { pragma: 'no-cache', vary: 'Accept' };

/**
 * GET/POST /refresh: an access token for an authid, as JSON
 * (`access_token`, `expires` in seconds, `type`, `token_type`, `expires_at`) or,
 * with `Accept: text/plain`, the bare token.
 */
export async function refresh(x: Exchange, { broker, now, onRefresh }: Deps): Promise<Response> {
  const form = await readForm(x.req);
  const authid = authIdFrom(x.req, x.url, form);
  if (!authid) {
    // Duplicati's new UI opens `<oauth-url>?type=…`; with --oauth-url=…/refresh that is this route.
    const type = x.url.searchParams.get('type');
    if (type !== null && x.req.method === 'GET') return redirect(startUrl(type));
    throw missingAuthId('Send it in the X-AuthID header (or the authid field, or Authorization: Bearer).');
  }
  let token: AccessToken;
  try {
    token = await broker.tokens.getAccessToken(authid, x.client);
  } catch (e) {
    onRefresh?.(failureOutcome(asBrokerError(e).code));
    throw e;
  }
  onRefresh?.(SOURCE_OUTCOME[token.source]);
  x.keyid = token.keyid;
  if (wantsPlainText(x.req)) return answer(token.accessToken, 200, TYPE.text, TOKEN_HEADERS);
  const body = {
    access_token: token.accessToken,
    expires: Math.max(0, Math.floor((token.expiresAt - now()) / 1000)),
    type: token.service,
    token_type: 'Bearer',
    expires_at: new Date(token.expiresAt).toISOString(),
  };
  return json(body, 200, TOKEN_HEADERS);
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
