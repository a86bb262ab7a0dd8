import { BrokerError } from '../errors.ts';
import { type ProviderError, type ProviderVerdict, parseProviderError } from './provider-errors.ts';
import { MICROSOFT, type Provider } from './providers.ts';

export { parseProviderError, type ProviderError, type ProviderVerdict } from './provider-errors.ts';

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** The fields of a token response the broker relies on, validated. */
export interface TokenResponse {
  accessToken: string;
  /** Seconds, as the provider sent them; never assume 3600. Absent only where access tokens do not expire (pCloud). */
  expiresIn: number;
  refreshToken?: string;
  idToken?: string;
  scope?: string;
}

export interface TokenClient {
  /** Whose endpoint: names it in messages, reads its errors, decides what is sent. */
  provider: Provider;
  fetch: Fetch;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Total budget for one call: connect, request, response body. */
  timeoutMs: number;
  /** Budget until the response headers arrive (connect included); a dead host fails fast. */
  headersTimeoutMs?: number;
}

export function redeemCode(c: TokenClient, p: { code: string; redirectUri: string; codeVerifier?: string; scope: string }): Promise<TokenResponse> {
  return tokenRequest(c, {
    grant_type: 'authorization_code',
    code: p.code,
    redirect_uri: p.redirectUri,
    ...(c.provider.pkce && p.codeVerifier ? { code_verifier: p.codeVerifier } : {}),
    ...(c.provider.scopeAtTokenEndpoint ? { scope: p.scope } : {}),
  });
}

/** No `redirect_uri` on a refresh: Dropbox refuses it. */
export function refreshGrant(c: TokenClient, p: { refreshToken: string; scope: string }): Promise<TokenResponse> {
  return tokenRequest(c, {
    grant_type: 'refresh_token',
    refresh_token: p.refreshToken,
    ...(c.provider.scopeAtTokenEndpoint ? { scope: p.scope } : {}),
  });
}

async function tokenRequest(c: TokenClient, params: Record<string, string>): Promise<TokenResponse> {
  const name = c.provider.name;
  // client_secret_post: every provider here accepts it, and a form body keeps the secret out of headers that proxies log.
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
      throw new BrokerError('upstream_timeout', `${name}'s token endpoint ${what} within ${Math.round(limit / 100) / 10} s.`, {
        cause: e,
        hint: 'Try again later.',
      });
    }
    throw new BrokerError('upstream_error', `${name}'s token endpoint could not be reached.`, {
      cause: e,
      hint: `Check the network and the ${c.provider.id === 'microsoft' ? '--authority' : '--token-url'} setting; try again later.`,
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
  // pCloud answers errors with HTTP 200 and a non-zero `result`.
  const failed =
    !res.ok || (json && typeof json === 'object' && typeof (json as { result?: unknown }).result === 'number' && (json as { result: number }).result !== 0);
  if (failed) throw classify(parseProviderError(res.status, json), c.provider);
  return parseTokenResponse(json, c.provider);
}

/** `error (AADSTS…); trace id …` or pCloud's `result N`: what a person quotes to the provider's support. */
function quoted(p: ProviderError): string {
  const trace = p.traceId ? `; trace id ${p.traceId}` : '';
  if (p.result !== undefined && !p.error) return `result ${p.result}${trace}`;
  const codes = p.errorCodes.length ? ` (AADSTS${p.errorCodes.join(', AADSTS')})` : '';
  return `${p.error || `HTTP ${p.status}`}${codes}${trace}`;
}

/** Microsoft's reading of an error (kept for `broker doctor` and the tests that name it). */
export function judge(p: ProviderError, provider: Provider = MICROSOFT): ProviderVerdict {
  return provider.judge(p);
}

export function classify(p: ProviderError, provider: Provider = MICROSOFT): BrokerError {
  const { code, why } = provider.judge(p);
  const name = provider.name;
  switch (code) {
    case 'login_required':
      return new BrokerError(code, `${name} asks you to sign in again: ${why} [${quoted(p)}].`, {
        hint: "Create a new AuthID on the broker's start page.",
      });
    case 'app_misconfigured':
      return new BrokerError(code, `The broker's ${name} app was rejected: ${why} [${quoted(p)}].`, {
        hint: "The broker's owner must fix the app registration or run `broker init` again.",
      });
    case 'upstream_error':
      return new BrokerError(code, `${why} [${quoted(p)}].`, { hint: 'Try again later.' });
  }
}

/** Access tokens that do not expire (pCloud) count as this long: the broker never refreshes them. */
const NEVER_EXPIRES_S = 100 * 365 * 86_400;

function parseTokenResponse(json: unknown, provider: Provider): TokenResponse {
  const badField = (field: string) => new BrokerError('upstream_error', `${provider.name}'s token response has a missing or invalid "${field}".`);
  if (!json || typeof json !== 'object') {
    throw new BrokerError('upstream_error', `${provider.name}'s token endpoint answered with something that is not JSON.`);
  }
  const o = json as Record<string, unknown>;
  if (typeof o.access_token !== 'string' || o.access_token.length === 0) throw badField('access_token');
  const given = typeof o.expires_in === 'string' ? Number(o.expires_in) : o.expires_in;
  const expiresIn = given === undefined && provider.refreshTokens === 'none' ? NEVER_EXPIRES_S : given;
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

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}
