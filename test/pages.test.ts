/**
 * The HTML pages (start, revoke, logged-in): the security headers every page
 * carries. (What a person sees on them: browser.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { AUTHID_IN_PAGE } from './support/authid.ts';
import { PUBLIC_URL } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';
import { cookiesOf, loginForm } from './support/http.ts';

const h = useHarness();

// Found by mutation testing.
describe('pages: strict CSP, no framing, no referrer', () => {
  const expectPageHeaders = (res: Response) => {
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/(^|; )default-src 'none'(;|$)/);
    expect(csp).toMatch(/(^|; )frame-ancestors 'none'(;|$)/);
    expect(csp).toMatch(/(^|; )script-src 'nonce-[A-Za-z0-9+/=]+'(;|$)/);
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cache-control')).toBe('no-store');
  };

  it('the start page, the revoke page and the page that shows the AuthID', async () => {
    h.clock.offsetMs = 0;
    expectPageHeaders(await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2`)));
    expectPageHeaders(await h.app(new Request(`${PUBLIC_URL}/revoke`)));

    const started = await h.app(new Request(`${PUBLIC_URL}/login`, loginForm()));
    const callback = await h.entra.login(started.headers.get('location')!, { username: 'gaps-headers' });
    const done = await h.app(new Request(callback, { headers: { cookie: cookiesOf(started).join('; ') } }));
    expect(done.status).toBe(200);
    expect(AUTHID_IN_PAGE.test(await done.text())).toBe(true);
    expectPageHeaders(done);
  });
});
