/**
 * Each provider end to end against its local stand-in (test/support/providers/):
 * the start page, connect, refresh after expiry, restart, refresh again, errors
 * read per provider, and revoke here and at the provider. In process; the
 * binary runs the same against Box in providers-binary.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { AUTHID } from './support/authid.ts';
import { loginForm } from './support/http.ts';
import { PUBLIC_URL, useProviderHarness } from './support/providers/harness.ts';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

describe('Google (googledrive, googledocs, gcs)', () => {
  const h = useProviderHarness('google');

  it('the start page lists only the Google services, grouped under Google, and keeps ?type= preselection', async () => {
    const page = await (await h.app(new Request(`${PUBLIC_URL}/`))).text();
    expect(page).toContain('<optgroup label="Google">');
    expect(page).not.toContain('onedrivev2');
    expect(page).not.toContain('optgroup label="Microsoft"');
    for (const id of ['googledrive', 'googledocs', 'gcs']) expect(page).toContain(`value="${id}"`);
    const one = await (await h.app(new Request(`${PUBLIC_URL}/?type=gcs`))).text();
    expect(one).toMatch(/<option value="gcs" selected>/);
    expect(one).not.toContain('value="googledrive"');
    expect(one).toContain('<input type="hidden" name="type" value="gcs">');
  });

  it("found by review: the start page's CSP lets the login form's redirect go to Google (form-action), not only to Microsoft", async () => {
    const start = await h.app(new Request(`${PUBLIC_URL}/?type=googledrive`));
    const formAction = /(?:^|; )form-action ([^;]*)/.exec(start.headers.get('content-security-policy') ?? '')?.[1]?.split(' ') ?? [];
    const login = await h.app(new Request(`${PUBLIC_URL}/login`, loginForm({ id: 'googledrive' })));
    expect(login.status).toBe(302);
    expect(formAction).toContain(new URL(login.headers.get('location')!).origin);
    expect(formAction).not.toContain('https://login.microsoftonline.com');
  });

  it('a type whose provider has no app here gets a page saying so (404, never 5xx), at / and at POST /login', async () => {
    const res = await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2`));
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('no Microsoft app set up');
    const post = await h.app(
      new Request(`${PUBLIC_URL}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
        body: new URLSearchParams({ id: 'box.com', passcode: 'whatever-passcode' }),
      }),
    );
    expect(post.status).toBe(404);
    expect(await post.text()).toContain('no Box app set up');
  });

  it('connect → refresh after expiry → restart → refresh again: one refresh token, kept (no rotation)', async () => {
    const c = await h.connect('googledrive');
    expect(c.authid).toMatch(AUTHID);
    const q = h.standIn.lastAuthorize!;
    expect(q.get('access_type')).toBe('offline');
    expect(q.get('prompt')).toBe('consent');
    expect(q.get('scope')).toBe('https://www.googleapis.com/auth/drive.file');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.has('nonce')).toBe(false);
    expect(q.has('include_granted_scopes')).toBe(false);
    expect(c.page).toContain('Connected: Google Drive');
    h.standIn.resetStats();

    const first = await h.refresh(c.authid);
    expect(first.status).toBe(200);
    const body = (await first.json()) as { access_token: string; type: string };
    expect(body.type).toBe('googledrive');
    expect(h.standIn.stats.refreshes).toBe(0);

    h.clock.offsetMs += 2 * HOUR;
    expect((await h.refresh(c.authid)).status).toBe(200);
    expect(h.standIn.stats.refreshes).toBe(1);
    h.restart();
    expect((await h.refresh(c.authid)).status).toBe(200);
    expect(h.standIn.stats.refreshes).toBe(1);
    h.clock.offsetMs += 2 * HOUR;
    expect((await h.refresh(c.authid)).status).toBe(200);
    expect(h.standIn.stats.refreshes).toBe(2);
    expect(h.standIn.stats.refused).toEqual([]);
    h.clock.offsetMs = 0;
  });

  it('a connection that dies around day 7 says why: the app is still in "Testing" (sign in again, 4xx, naming Google)', async () => {
    const c = await h.connect('gcs');
    h.clock.offsetMs = 7 * DAY;
    h.standIn.expireAll();
    const res = await h.refresh(c.authid);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    const reason = res.headers.get('x-reason')!;
    expect(reason).toContain('Google asks you to sign in again');
    expect(reason).toContain('invalid_grant');
    expect(reason).toContain('"Testing"');
    // Never the provider's own description text.
    expect(reason).not.toContain('Token has been expired or revoked');
    h.clock.offsetMs = 0;
  });

  it('the three cases, naming Google: a dead grant is sign in again (400, above), a wrong client secret the app misconfigured (502 app_misconfigured), a 503 transient (502 upstream_error)', async () => {
    const c = await h.connect('googledocs');
    h.clock.offsetMs += 2 * HOUR;
    h.standIn.failNext(401, { error: 'invalid_client', error_description: 'Unauthorized' });
    const bad = await h.refresh(c.authid);
    expect(bad.status).toBe(502);
    expect(((await bad.json()) as { error: string }).error).toBe('app_misconfigured');
    expect(bad.headers.get('x-reason')).toContain("The broker's Google app was rejected");
    h.standIn.failNext(503, { error: 'temporarily_unavailable' }, 20);
    h.broker.ctx.config = { ...h.broker.ctx.config, upstreamBudgetMs: 600 };
    const flaky = await h.refresh(c.authid);
    expect(flaky.status).toBeGreaterThanOrEqual(500);
    expect(((await flaky.json()) as { error: string }).error).toBe('upstream_error');
    expect(flaky.headers.get('x-reason')).toContain("Google's token endpoint failed temporarily");
    h.standIn.failNext(200, {}, 0);
    h.clock.offsetMs = 0;
  });

  it('revoke by AuthID revokes at Google too; a failed call at Google is reported, and the local revoke still happens', async () => {
    const c = await h.connect('googledrive');
    const live = h.standIn.liveGrants();
    const res = await h.revoke(c.authid);
    expect(await res.json()).toMatchObject({ revoked: true, provider: 'Google', provider_revoked: true });
    expect(h.standIn.stats.revocations).toBeGreaterThan(0);
    expect(h.standIn.liveGrants()).toBe(live - 1);
    expect((await h.refresh(c.authid)).headers.get('x-reason')).toContain('revoked');

    const d = await h.connect('googledrive');
    const app = h.broker.ctx.config.providers!.google!;
    h.broker.ctx.config = { ...h.broker.ctx.config, providers: { google: { ...app, revokeUrl: `${h.standIn.base}/missing` } } };
    const failed = (await (await h.revoke(d.authid)).json()) as Record<string, unknown>;
    expect(failed).toMatchObject({ revoked: true, provider: 'Google', provider_revoked: false });
    expect(String(failed.provider_message)).toContain('Google did not confirm the revocation');
    expect((await h.refresh(d.authid)).headers.get('x-reason')).toContain('revoked');
    h.broker.ctx.config = { ...h.broker.ctx.config, providers: { google: app } };
  });
});

describe('Google, with the scope unticked on the consent screen', () => {
  const h = useProviderHarness('google', { behaviour: { grantedScope: 'openid' } });

  it('the login fails naming the scope, and no connection is made', async () => {
    await expect(h.connect('googledrive')).rejects.toThrow(/Google did not grant https:\/\/www.googleapis.com\/auth\/drive.file/);
    expect((await h.store.countByState()).reduce((a, r) => a + r.count, 0)).toBe(0);
  });
});

describe('the revoke page (a browser) says what happened at the provider', () => {
  const h = useProviderHarness('google');
  const revokeInBrowser = (authid: string) =>
    h.app(
      new Request(`${PUBLIC_URL}/revoked`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', origin: PUBLIC_URL, 'sec-fetch-site': 'same-origin' },
        body: new URLSearchParams({ authid }),
      }),
    );

  it('confirmed by Google, or its failure shown as an error naming Google; revoked here either way', async () => {
    const c = await h.connect('googledrive');
    const ok = await revokeInBrowser(c.authid);
    expect(ok.status).toBe(200);
    const page = await ok.text();
    expect(page).toContain('The AuthID is revoked');
    expect(page).toContain('Google confirmed: the grant is revoked there too.');

    const d = await h.connect('googledrive');
    const app = h.broker.ctx.config.providers!.google!;
    h.broker.ctx.config = { ...h.broker.ctx.config, providers: { google: { ...app, revokeUrl: 'http://127.0.0.1:9/revoke' } } };
    const failed = await revokeInBrowser(d.authid);
    expect(failed.status).toBe(200);
    const text = await failed.text();
    expect(text).toContain('The AuthID is revoked');
    expect(text).toMatch(/class="error" role="alert">Google&#x27;s revocation endpoint could not be reached/);
    expect(text).toContain('https://myaccount.google.com/permissions');
    expect((await h.refresh(d.authid)).status).toBe(410);
  });
});

describe('Box (box.com): single-use refresh tokens, never lost', () => {
  const h = useProviderHarness('box');

  it('connect → refresh after expiry → restart → refresh again: each refresh spends the old token, and none is ever replayed', async () => {
    const c = await h.connect('box.com');
    const q = h.standIn.lastAuthorize!;
    expect(q.get('scope')).toBe('root_readwrite');
    expect(q.has('code_challenge')).toBe(false);
    h.standIn.resetStats();
    for (let i = 0; i < 3; i++) {
      h.clock.offsetMs += 2 * HOUR;
      expect((await h.refresh(c.authid)).status).toBe(200);
      h.restart();
    }
    expect(h.standIn.stats.refreshes).toBe(3);
    expect(h.standIn.stats.reuse).toBe(0);
  });

  it('found by review: an answer from Box lost after it spent the token (a 5xx) is not retried with the spent token, which would end the grant', async () => {
    const c = await h.connect('box.com');
    h.standIn.resetStats();
    h.clock.offsetMs += 2 * HOUR;
    h.standIn.loseNextAnswers(1);
    const res = await h.refresh(c.authid);
    // A transient failure the caller (Duplicati) retries later, not a "sign in again".
    expect(res.status).toBe(502);
    expect(h.standIn.stats.refreshes).toBe(1);
    expect(h.standIn.stats.reuse).toBe(0);
    expect((await h.store.getHead(c.keyid))?.state).toBe('active');
  });

  it('300 concurrent refreshes of an expired token → one call to Box, 300 answers with the same token, no reuse', async () => {
    const c = await h.connect('box.com');
    h.standIn.resetStats();
    h.standIn.setTokenDelay(50);
    h.clock.offsetMs += 2 * HOUR;
    const answers = await Promise.all(Array.from({ length: 300 }, () => h.refresh(c.authid)));
    h.standIn.setTokenDelay(0);
    expect(answers.map((r) => r.status)).toEqual(Array(300).fill(200));
    const tokens = new Set(await Promise.all(answers.map(async (r) => ((await r.json()) as { access_token: string }).access_token)));
    expect(tokens.size).toBe(1);
    expect(h.standIn.stats.refreshes).toBe(1);
    expect(h.standIn.stats.reuse).toBe(0);
    // And the next one still works: the new refresh token was kept.
    h.clock.offsetMs += 2 * HOUR;
    expect((await h.refresh(c.authid)).status).toBe(200);
    expect(h.standIn.stats.reuse).toBe(0);
  });

  it('a grant Box ended is a "sign in again" naming Box; revoke calls Box with the app id and secret', async () => {
    const c = await h.connect('box.com');
    const res = await h.revoke(c.authid);
    expect(await res.json()).toMatchObject({ provider: 'Box', provider_revoked: true });
    const d = await h.connect('box.com');
    h.standIn.expireAll();
    h.clock.offsetMs += 2 * HOUR;
    const dead = await h.refresh(d.authid);
    expect(dead.headers.get('x-reason')).toContain('Box asks you to sign in again');
  });
});

describe('Dropbox', () => {
  const h = useProviderHarness('dropbox');

  it('asks for offline access and the four scopes, refreshes without redirect_uri, 4 h tokens, AuthIDs with ":"', async () => {
    const c = await h.connect('dropbox');
    expect(c.authid).toContain(':');
    const q = h.standIn.lastAuthorize!;
    expect(q.get('token_access_type')).toBe('offline');
    expect(q.get('scope')).toBe('files.content.write files.content.read files.metadata.read files.metadata.write');
    const body = (await (await h.refresh(c.authid)).json()) as { expires: number };
    expect(body.expires).toBeGreaterThan(14_000);
    h.clock.offsetMs += 5 * HOUR;
    expect((await h.refresh(c.authid)).status).toBe(200);
    h.restart();
    h.clock.offsetMs += 5 * HOUR;
    expect((await h.refresh(c.authid)).status).toBe(200);
    expect(h.standIn.stats.refused).toEqual([]);
  });

  it('revoke with an expired access token: the broker mints one, revokes with it as Bearer, and the grant is dead at Dropbox', async () => {
    const c = await h.connect('dropbox');
    h.clock.offsetMs += 10 * HOUR;
    const before = h.standIn.liveGrants();
    expect(await (await h.revoke(c.authid)).json()).toMatchObject({ provider: 'Dropbox', provider_revoked: true });
    expect(h.standIn.liveGrants()).toBe(before - 1);
    h.clock.offsetMs = 0;
  });
});

describe('Dropbox with the scopes not enabled on the app', () => {
  const h = useProviderHarness('dropbox', { behaviour: { enabledScopes: ['account_info.read', 'files.metadata.read'] } });

  it('the login page says to enable the scopes on the Permissions tab', async () => {
    await expect(h.connect('dropbox')).rejects.toThrow(/Permissions tab/);
  });
});

describe('pCloud: shows its access token and keeps nothing', () => {
  const h = useProviderHarness('pcloud');

  it('the token comes from the host the callback names, is shown in the page, and nothing is stored', async () => {
    const c = await h.connect('pcloud');
    expect(c.authid).toMatch(/^pcloud-at-/);
    expect(c.page).toContain('keeps nothing');
    expect(c.page).not.toContain('/refresh');
    expect((await h.store.countByState()).reduce((a, r) => a + r.count, 0)).toBe(0);
    expect(h.standIn.lastAuthorize!.has('scope')).toBe(false);
  });

  it('a callback naming another host gets no client secret: the login fails and the token endpoint is never called', async () => {
    h.standIn.resetStats();
    await expect(h.connect('pcloud', { hostname: 'evil.example:443' })).rejects.toThrow(/API host the broker does not know/);
    expect(h.standIn.stats.codeRedemptions).toBe(0);
  });
});

describe('a callback without state', () => {
  const pcloud = useProviderHarness('pcloud', { behaviour: { dropState: true } });
  const google = useProviderHarness('google', { behaviour: { dropState: true } });

  it('found by review: pCloud (which drops it for some accounts) is refused too, since the login cookie alone would let another site finish a login with its own code (login CSRF)', async () => {
    pcloud.standIn.resetStats();
    await expect(pcloud.connect('pcloud')).rejects.toThrow(/login_state_invalid|400|unknown, was already used/);
    expect(pcloud.standIn.stats.codeRedemptions).toBe(0);
  });

  it('Google (which always sends it): refused, and the code is never redeemed', async () => {
    google.standIn.resetStats();
    await expect(google.connect('googledrive')).rejects.toThrow(/login_state_invalid|400|unknown, was already used/);
    expect(google.standIn.stats.codeRedemptions).toBe(0);
  });
});
