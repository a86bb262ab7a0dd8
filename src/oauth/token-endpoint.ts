import { BrokerError } from '../errors.ts';

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** The fields of a token response the broker relies on, validated. */
export interface TokenResponse {
  accessToken: string;
  /** Seconds, as Microsoft sent them; never assume 3600. */
  expiresIn: number;
  refreshToken?: string;
  idToken?: string;
  scope?: string;
}

export interface TokenClient {
  fetch: Fetch;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Total budget for one call: connect, request, response body. */
  timeoutMs: number;
  /** Budget until the response headers arrive (connect included); a dead host fails fast. */
  headersTimeoutMs?: number;
}

/** Microsoft's error body, reduced to what may drive decisions (never the description text). */
export interface ProviderError {
  status: number;
  error: string;
  errorCodes: number[];
  traceId?: string;
  correlationId?: string;
}

export function redeemCode(c: TokenClient, p: { code: string; redirectUri: string; codeVerifier: string; scope: string }): Promise<TokenResponse> {
  return tokenRequest(c, {
    grant_type: 'authorization_code',
    code: p.code,
    redirect_uri: p.redirectUri,
    code_verifier: p.codeVerifier,
    scope: p.scope,
  });
}

export function refreshGrant(c: TokenClient, p: { refreshToken: string; scope: string }): Promise<TokenResponse> {
  return tokenRequest(c, { grant_type: 'refresh_token', refresh_token: p.refreshToken, scope: p.scope });
}

async function tokenRequest(c: TokenClient, params: Record<string, string>): Promise<TokenResponse> {
  // client_secret_post: Entra accepts both, and a form body keeps the secret out of headers that proxies log.
  const body = new URLSearchParams({ client_id: c.clientId, client_secret: c.clientSecret, ...params });
  const controller = new AbortController();
  let phase: 'connect' | 'body' = 'connect';
  const headersTimer = setTimeout(() => controller.abort(new TimeoutError('connect')), c.headersTimeoutMs ?? c.timeoutMs);
  const totalTimer = setTimeout(() => controller.abort(new TimeoutError('total')), c.timeoutMs);
  let res: Response;
  let text: string;
  try {
    res = await c.fetch(c.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
      redirect: 'error',
      signal: controller.signal,
    });
    phase = 'body';
    clearTimeout(headersTimer);
    text = await res.text();
  } catch (e) {
    if (controller.signal.aborted) {
      const what = phase === 'connect' ? 'did not answer' : 'did not finish its answer';
      const limit = phase === 'connect' ? (c.headersTimeoutMs ?? c.timeoutMs) : c.timeoutMs;
      throw new BrokerError('upstream_timeout', `Microsoft's token endpoint ${what} within ${Math.round(limit / 100) / 10} s.`, {
        cause: e,
        hint: 'Try again later.',
      });
    }
    throw new BrokerError('upstream_error', "Microsoft's token endpoint could not be reached.", {
      cause: e,
      hint: 'Check the network and the --authority setting; try again later.',
    });
  } finally {
    clearTimeout(headersTimer);
    clearTimeout(totalTimer);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) throw classify(parseProviderError(res.status, json));
  return parseTokenResponse(json);
}

/** Microsoft's error body, reduced to its tokens: never the description text, which can echo request values. */
export function parseProviderError(status: number, json: unknown): ProviderError {
  const o = (json && typeof json === 'object' ? json : {}) as Record<string, unknown>;
  const codes = Array.isArray(o.error_codes) ? o.error_codes.filter((n): n is number => typeof n === 'number') : [];
  return {
    status,
    error: typeof o.error === 'string' ? o.error : '',
    errorCodes: codes,
    traceId: typeof o.trace_id === 'string' ? o.trace_id : undefined,
    correlationId: typeof o.correlation_id === 'string' ? o.correlation_id : undefined,
  };
}

/** `error (AADSTS…); trace id …`: what a person quotes to Microsoft's support. */
function aadsts(p: ProviderError): string {
  const codes = p.errorCodes.length ? ` (AADSTS${p.errorCodes.join(', AADSTS')})` : '';
  const trace = p.traceId ? `; trace id ${p.traceId}` : '';
  return `${p.error || `HTTP ${p.status}`}${codes}${trace}`;
}

/** What the broker makes of one of Microsoft's errors, and why, in a few words. */
export interface ProviderVerdict {
  code: 'login_required' | 'app_misconfigured' | 'upstream_error';
  why: string;
}

/**
 * Branches on `error` (with AADSTS numbers only to choose the sentence), as
 * Microsoft asks: the description text may change and is never shown, since it
 * can echo request values. The one table of Microsoft's errors: `classify` and
 * `broker doctor` both read it.
 */
export function judge(p: ProviderError): ProviderVerdict {
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
}

export function classify(p: ProviderError): BrokerError {
  const { code, why } = judge(p);
  switch (code) {
    case 'login_required':
      return new BrokerError(code, `Microsoft asks you to sign in again: ${why} [${aadsts(p)}].`, {
        hint: "Create a new AuthID on the broker's start page.",
      });
    case 'app_misconfigured':
      return new BrokerError(code, `The broker's Microsoft app was rejected: ${why} [${aadsts(p)}].`, {
        hint: "The broker's owner must fix the app registration or run `broker init` again.",
      });
    case 'upstream_error':
      return new BrokerError(code, `${why} [${aadsts(p)}].`, { hint: 'Try again later.' });
  }
}

function parseTokenResponse(json: unknown): TokenResponse {
  if (!json || typeof json !== 'object') {
    throw new BrokerError('upstream_error', "Microsoft's token endpoint answered with something that is not JSON.");
  }
  const o = json as Record<string, unknown>;
  if (typeof o.access_token !== 'string' || o.access_token.length === 0) throw badField('access_token');
  const expiresIn = typeof o.expires_in === 'string' ? Number(o.expires_in) : o.expires_in;
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) throw badField('expires_in');
  if (o.refresh_token !== undefined && typeof o.refresh_token !== 'string') throw badField('refresh_token');
  if (o.id_token !== undefined && typeof o.id_token !== 'string') throw badField('id_token');
  if (typeof o.token_type === 'string' && o.token_type.toLowerCase() !== 'bearer') throw badField('token_type');
  return {
    accessToken: o.access_token,
    expiresIn: Math.floor(expiresIn),
    refreshToken: o.refresh_token as string | undefined,
    idToken: o.id_token as string | undefined,
    scope: typeof o.scope === 'string' ? o.scope : undefined,
  };
}

function badField(field: string): BrokerError {
  return new BrokerError('upstream_error', `Microsoft's token response has a missing or invalid "${field}".`);
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}
