import { asBrokerError, type BrokerError, type ErrorCode } from '../errors.ts';

/**
 * The one mapping from error codes to HTTP statuses. Duplicati retries a 4xx once
 * and a 5xx five times with back-off, and stops at once on a 503 that carries an
 * X-Reason; so 4xx means "retrying cannot fix this", 5xx "try again later", and
 * 503 is reserved for a deliberate stop.
 */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  authid_missing: 400,
  authid_malformed: 400,
  request_too_large: 413,
  not_found: 404,
  method_not_allowed: 405,
  unknown_service: 404,
  invalid_authid: 401,
  revoked: 410,
  passcode_invalid: 403,
  rate_limited: 429,
  login_state_invalid: 400,
  login_failed: 400,
  id_token_invalid: 400,
  login_required: 400,
  app_misconfigured: 502,
  upstream_error: 502,
  upstream_timeout: 504,
  conflict: 500,
  config_missing: 500,
  config_invalid: 500,
  usage: 400,
  store_error: 500,
  listen_failed: 500,
  internal: 500,
};

/** One line of printable ASCII: a header cannot carry more, and a log line should not. */
export function headerSafe(text: string, max = 400): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max - 3)}...` : clean;
}

export function describe(e: BrokerError): string {
  return e.hint ? `${e.message} ${e.hint}` : e.message;
}

export function errorHeaders(e: BrokerError): Headers {
  const h = new Headers({
    'cache-control': 'no-store',
    'x-reason': headerSafe(describe(e)),
    'access-control-expose-headers': 'X-Reason',
  });
  if (e.options.retryAfter) h.set('retry-after', String(e.options.retryAfter));
  if (e.code === 'method_not_allowed') h.set('allow', 'GET, POST');
  return h;
}

export function jsonError(err: unknown): Response {
  const e = asBrokerError(err);
  const headers = errorHeaders(e);
  headers.set('content-type', 'application/json; charset=utf-8');
  return new Response(JSON.stringify({ error: e.code, error_description: describe(e) }), { status: HTTP_STATUS[e.code], headers });
}
