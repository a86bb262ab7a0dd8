import { asBrokerError, ERROR_CODES, ERRORS, type BrokerError, type ErrorCode } from '../errors.ts';

/** Each code's status, from the one table in src/errors.ts (where the choice of statuses is explained). */
export const HTTP_STATUS = Object.fromEntries(ERROR_CODES.map((c) => [c, ERRORS[c].status])) as Record<ErrorCode, number>;

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
