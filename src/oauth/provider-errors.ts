/**
 * Each provider's token-endpoint errors, read into the same three cases: the
 * user must sign in again, the owner's app is misconfigured, or the provider
 * failed for a while. The tables here are the only place that knows a
 * provider's error vocabulary; `classify` and `broker doctor` read them.
 */

/** A provider's error body, reduced to what may drive decisions (never the description text, which can echo request values). */
export interface ProviderError {
  status: number;
  error: string;
  errorCodes: number[];
  traceId?: string;
  correlationId?: string;
  /** pCloud's error number (`result` ≠ 0 in an HTTP 200 answer). */
  result?: number;
}

/** What the broker makes of one of a provider's errors, and why, in a few words. */
export interface ProviderVerdict {
  code: 'login_required' | 'app_misconfigured' | 'upstream_error';
  why: string;
}

export type Judge = (p: ProviderError) => ProviderVerdict;

/**
 * The error body reduced to its tokens. Entra adds `error_codes` and trace ids;
 * pCloud answers HTTP 200 with a non-zero `result` and no `error` token, kept
 * as the number.
 */
export function parseProviderError(status: number, json: unknown): ProviderError {
  const o = (json && typeof json === 'object' ? json : {}) as Record<string, unknown>;
  const codes = Array.isArray(o.error_codes) ? o.error_codes.filter((n): n is number => typeof n === 'number') : [];
  return {
    status,
    error: typeof o.error === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(o.error) ? o.error : '',
    errorCodes: codes,
    traceId: typeof o.trace_id === 'string' ? o.trace_id : undefined,
    correlationId: typeof o.correlation_id === 'string' ? o.correlation_id : undefined,
    result: typeof o.result === 'number' && o.result !== 0 ? o.result : undefined,
  };
}

/**
 * Microsoft: branches on `error` (with AADSTS numbers only to choose the
 * sentence), as Microsoft asks: the description text may change and is never shown.
 */
export const judgeMicrosoft: Judge = (p) => {
  const codes = new Set(p.errorCodes);
  switch (p.error) {
    case 'invalid_grant':
    case 'interaction_required':
    case 'consent_required':
    case 'login_required': {
      let why = 'the connection is no longer valid';
      if (codes.has(700082)) why = 'the connection was not used for 90 days';
      else if (codes.has(70008) || codes.has(50173)) why = 'the grant was revoked or has expired';
      else if (codes.has(70043)) why = 'a sign-in frequency policy requires a new sign-in';
      else if (codes.has(65001)) why = 'consent for the app was removed';
      return { code: 'login_required', why };
    }
    case 'invalid_client':
    case 'unauthorized_client':
    case 'invalid_request':
    case 'invalid_scope':
    case 'unsupported_grant_type': {
      let why = 'Microsoft rejected the app registration';
      if (codes.has(7000215)) why = 'the app secret is wrong (was the secret ID pasted instead of its Value?)';
      else if (codes.has(7000222)) why = 'the app secret has expired';
      else if (codes.has(7000218)) why = 'the app secret is missing';
      else if (codes.has(700016) || codes.has(700011)) why = 'the client id is not known in this tenant';
      else if (codes.has(50011) || codes.has(70004)) why = 'the redirect URI is not registered for the app';
      else if (codes.has(9002332) || codes.has(50194) || codes.has(90130)) why = "the tenant setting does not match the app's supported account types";
      return { code: 'app_misconfigured', why };
    }
    default:
      return { code: 'upstream_error', why: "Microsoft's token endpoint failed temporarily" };
  }
};

/**
 * An RFC 6749 provider (Google, Dropbox, Box): `invalid_grant` means the grant
 * is gone (expired, revoked, or a spent single-use refresh token); the client
 * errors mean the owner's app is wrong; anything else is passing.
 */
export function judgeOAuth(name: string, reasons: { grant?: string; client?: Partial<Record<string, string>> } = {}): Judge {
  return (p) => {
    switch (p.error) {
      case 'invalid_grant':
        return { code: 'login_required', why: reasons.grant ?? 'the grant was revoked or has expired' };
      case 'invalid_client':
      case 'unauthorized_client':
      case 'deleted_client':
      case 'invalid_request':
      case 'invalid_scope':
      case 'unsupported_grant_type':
        return { code: 'app_misconfigured', why: reasons.client?.[p.error] ?? `${name} rejected the app (${p.error})` };
      default:
        return { code: 'upstream_error', why: `${name}'s token endpoint failed temporarily` };
    }
  };
}

/**
 * pCloud: HTTP 200 with `result` ≠ 0. 1xxx/2xxx concern the request or the login
 * (a bad code, client id or secret), 4xxx is rate limiting, 5xxx an internal error.
 */
export const judgePcloud: Judge = (p) => {
  const n = p.result ?? 0;
  if (p.status >= 500 || n >= 4000 || (n === 0 && p.status !== 401)) return { code: 'upstream_error', why: "pCloud's token endpoint failed temporarily" };
  if (n === 2012 || n === 2000 || n === 1000 || p.status === 401) return { code: 'login_required', why: 'pCloud did not accept the sign-in' };
  return { code: 'app_misconfigured', why: `pCloud rejected the app (result ${n})` };
};
