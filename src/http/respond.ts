import { appOf, type BrokerConfig } from '../broker/context.ts';
import { asBrokerError, type BrokerError } from '../errors.ts';
import { endpointsOf, PROVIDERS } from '../oauth/providers.ts';
import { describe, errorHeaders, HTTP_STATUS } from './errors.ts';
import type { Exchange } from './exchange.ts';

// Every answer the broker builds, and the headers they share: each written once.

/** Every answer carries a secret, asks for one, or tells whether one exists: none is ever cached. */
export const NO_STORE: Readonly<Record<string, string>> = { 'cache-control': 'no-store' };
/** Pages and redirects: nothing of the broker's URLs goes to another site in a Referer. */
const NO_REFERRER = { 'referrer-policy': 'no-referrer' };
/** Pages and JSONP: the browser takes the type it is given, never guesses another. */
const NO_SNIFF = { 'x-content-type-options': 'nosniff' };

export const TYPE = {
  html: 'text/html; charset=utf-8',
  json: 'application/json; charset=utf-8',
  text: 'text/plain; charset=utf-8',
  javascript: 'application/javascript; charset=utf-8',
} as const;

/** An answer of `type` (none for a redirect), never cached, with the headers it adds. */
export function answer(body: string | null, status: number, type: string | null, more: Record<string, string> = {}): Response {
  // A plain object: Response builds its Headers once (a Headers here plus set() cost a second copy).
  const headers: Record<string, string> = { ...NO_STORE, ...more };
  if (type) headers['content-type'] = type;
  return new Response(body, { status, headers });
}

export function json(body: unknown, status = 200, more: Record<string, string> = {}): Response {
  return answer(JSON.stringify(body), status, TYPE.json, more);
}

/** JSON or JSONP that a browser script reads. */
export function script(text: string, type: typeof TYPE.json | typeof TYPE.javascript): Response {
  return answer(text, 200, type, NO_SNIFF);
}

export function redirect(location: string): Response {
  return answer(null, 302, null, { location, ...NO_REFERRER });
}

/** `{"error", "error_description"}`, with the status of the error's code. */
export function jsonError(err: unknown): Response {
  const e = asBrokerError(err);
  return json({ error: e.code, error_description: describe(e) }, HTTP_STATUS[e.code], errorHeaders(e));
}

/** A page (no body for HEAD); with `err`, it also says the error as JSON answers do. */
export function page(x: Exchange, config: BrokerConfig, status: number, body: string, err?: BrokerError): Response {
  const more = { ...pageHeaders(x.nonce, authorizeOrigins(config)), ...(err ? errorHeaders(err) : {}) };
  return answer(x.req.method === 'HEAD' ? null : body, status, TYPE.html, more);
}

/** Pages may show an authid or take a passcode: never cached, never framed, never referred. */
function pageHeaders(nonce: string, authorizeOrigins: string): Record<string, string> {
  return {
    'content-security-policy': [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src 'nonce-${nonce}'`,
      "img-src 'self' data:",
      // The login form's answer redirects to the provider; browsers check form-action on that redirect.
      `form-action 'self' ${authorizeOrigins}`,
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join('; '),
    'x-frame-options': 'DENY',
    ...NO_SNIFF,
    ...NO_REFERRER,
  };
}

/**
 * The broker's two browser cookies: `login` binds a login's state to the browser
 * that started it, `fetch` a Duplicati fetch token to the browser that registered it.
 */
export type CookieName = 'login' | 'fetch';

/** Over https the `__Host-` prefix: Secure, no Domain, Path=/, so no other host can set or read it. */
function secure(config: BrokerConfig): boolean {
  return config.publicUrl.startsWith('https://');
}

function cookieName(config: BrokerConfig, which: CookieName): string {
  return `${secure(config) ? '__Host-' : ''}broker_${which}`;
}

export function setCookie(res: Response, config: BrokerConfig, which: CookieName, value: string, maxAgeSeconds: number): Response {
  const cookie = new Bun.Cookie(cookieName(config, which), value, {
    httpOnly: true,
    // Lax, not Strict: the login's callback is a top-level navigation from Microsoft's site.
    sameSite: 'lax',
    secure: secure(config),
    path: '/',
    maxAge: maxAgeSeconds,
  });
  res.headers.append('set-cookie', cookie.serialize());
  return res;
}

export function clearCookie(res: Response, config: BrokerConfig, which: CookieName): Response {
  return setCookie(res, config, which, '', 0);
}

export function readCookie(req: Request, config: BrokerConfig, which: CookieName): string | null {
  return new Bun.CookieMap(req.headers.get('cookie') ?? '').get(cookieName(config, which));
}

/** The origins of every configured provider's authorize endpoint, where the login form's answer may redirect. */
function authorizeOrigins(config: BrokerConfig): string {
  const origins = new Set<string>();
  for (const provider of Object.values(PROVIDERS)) {
    const app = appOf(config, provider);
    if (!app) continue;
    try {
      origins.add(new URL(endpointsOf(provider, app).authorizeUrl).origin);
    } catch {
      // An unusable URL is refused where it is used; it adds nothing here.
    }
  }
  return [...origins].join(' ');
}
