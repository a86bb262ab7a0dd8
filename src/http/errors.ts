import { ERROR_CODES, ERRORS, type BrokerError, type ErrorCode } from '../errors.ts';

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

/** What an error adds to any answer, page or JSON: the text in X-Reason (Duplicati shows exactly that), and when to retry. */
export function errorHeaders(e: BrokerError): Record<string, string> {
  const h: Record<string, string> = {
    'x-reason': headerSafe(describe(e)),
    'access-control-expose-headers': 'X-Reason',
  };
  if (e.options.retryAfter) h['retry-after'] = String(e.options.retryAfter);
  return h;
}
