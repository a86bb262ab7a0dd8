/** The browser part of a login, scripted: follow the authorize URL through the login form to the callback. */
import type { LoginOptions } from './config.ts';

/**
 * Just enough of a browser cookie store for `login()`: honours Path and
 * deletion, which is what oidc-provider relies on (its interaction and resume
 * cookies are scoped to their own paths, so a path bug here would also break
 * a real browser). Domain, Secure and SameSite don't matter on one origin.
 */
class CookieJar {
  readonly #cookies = new Map<string, { name: string; value: string; path: string }>();

  store(requestUrl: URL, setCookieLines: string[]): void {
    for (const line of setCookieLines) {
      const [pair = '', ...attributes] = line.split(';').map((part) => part.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = requestUrl.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [key = '', attrValue = ''] = attribute.split('=');
        if (/^path$/i.test(key) && attrValue.startsWith('/')) path = attrValue;
        if (/^max-age$/i.test(key) && Number(attrValue) <= 0) expired = true;
        if (/^expires$/i.test(key) && Date.parse(attrValue) <= Date.now()) expired = true;
      }
      const key = `${name}\u0000${path}`;
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { name, value, path });
    }
  }

  header(url: URL): string | undefined {
    const matching = [...this.#cookies.values()].filter(({ path }) => url.pathname === path || url.pathname.startsWith(path.endsWith('/') ? path : `${path}/`));
    return matching.length ? matching.map(({ name, value }) => `${name}=${value}`).join('; ') : undefined;
  }
}

export async function browserLogin(authorizeUrl: string, loginOpts: LoginOptions = {}): Promise<string> {
  const start = new URL(authorizeUrl);
  const redirectUri = start.searchParams.get('redirect_uri');
  const jar = new CookieJar();
  let url = start;
  let init: RequestInit = { method: 'GET' };

  for (let hop = 0; hop < 20; hop += 1) {
    const headers = new Headers(init.headers);
    const cookie = jar.header(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    jar.store(url, res.headers.getSetCookie());

    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      const next = new URL(location, url);
      const isCallback = next.origin !== start.origin || (redirectUri !== null && `${next.origin}${next.pathname}` === redirectUri.split(/[?#]/)[0]);
      if (isCallback) return next.href;
      url = next;
      init = { method: 'GET' };
      continue;
    }

    const text = await res.text();
    const action = /<form id="login-form" method="post" action="([^"]+)"/.exec(text)?.[1];
    if (res.status === 200 && action) {
      const target = loginOpts.cancel ? action.replace(/\/login$/, '/abort') : action;
      url = new URL(target.replace(/&amp;/g, '&'), url);
      init = {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username: loginOpts.username ?? 'testuser', password: 'password' }).toString(),
      };
      continue;
    }
    throw new Error(`entra login: unexpected HTTP ${res.status} from ${url.href}: ${text.slice(0, 500)}`);
  }
  throw new Error('entra login: too many redirects');
}
