/**
 * Conformance with Duplicati's client: the compiled binary, spoken to exactly as
 * Duplicati speaks to its OAuth service, against the local provider.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOOPBACK_CALLBACK, configuredHome, connectOverHttp, serve, type Served } from './support/binary.ts';
import { DuplicatiError, duplicatiGetToken, loginUrl } from './support/duplicati-client.ts';
import { authidInPage } from './support/authid.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';

const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
let served: Served;
let oauthUrl: string;

beforeAll(async () => {
  const { home } = await configuredHome(entra, PASSCODE);
  served = await serve(home);
  oauthUrl = `${served.url}/refresh`;
});
afterAll(async () => {
  await served?.stop();
});

const connect = (service = 'onedrivev2') => connectOverHttp(served.url, PASSCODE, entra.login, { service });

describe('the refresh call', () => {
  for (const service of ['onedrivev2', 'sharepoint', 'msgroup']) {
    it(`${service}: access_token, integer expires > 30, type, never v2_authid`, async () => {
      const c = await connect(service);
      const r = await duplicatiGetToken(oauthUrl, c.authid, { module: service });
      expect(r.attempts).toBe(1);
      expect(r.body.type).toBe(service);
      expect(r.body.expires as number).toBeGreaterThan(30);
      expect(r.validUntil).toBeGreaterThan(Date.now());
      expect(r.body).not.toHaveProperty('v2_authid');
      expect(JSON.stringify(r.body)).not.toMatch(/refresh_token/);
    });
  }

  it('a second operation minutes later gets the cached token (no Microsoft call)', async () => {
    const c = await connect();
    const a = await duplicatiGetToken(oauthUrl, c.authid);
    entra.resetStats();
    const b = await duplicatiGetToken(oauthUrl, c.authid);
    expect(b.accessToken).toBe(a.accessToken);
    expect(entra.stats().tokenRequests).toBe(0);
  });

  it('an oauth-url with a query string still works (Duplicati keeps it)', async () => {
    const c = await connect();
    expect((await duplicatiGetToken(`${oauthUrl}?x=1`, c.authid)).attempts).toBe(1);
  });
});

describe('errors as Duplicati shows them', () => {
  it('revoked: a 4xx tried twice, with a sentence that says where to get a new AuthID', async () => {
    const c = await connect();
    await fetch(`${served.url}/revoke`, { method: 'POST', headers: { 'x-authid': c.authid } });
    const e = (await duplicatiGetToken(oauthUrl, c.authid).catch((x) => x)) as DuplicatiError;
    expect(e).toBeInstanceOf(DuplicatiError);
    expect(e.attempts).toBe(2);
    expect(e.message).toContain(`This AuthID was revoked; create a new one at ${served.url}/`);
    expect(e.message).toContain(`try generating a new authid token from: ${served.url}?type=onedrivev2`);
  });

  it('wrong secret: the generic answer, tried twice', async () => {
    const c = await connect();
    const secret = c.authid.split(':')[1]!;
    const e = (await duplicatiGetToken(oauthUrl, `${c.keyid}:${secret.startsWith('a') ? 'b' : 'a'}${secret.slice(1)}`).catch((x) => x)) as DuplicatiError;
    expect(e.status).toBe(401);
    expect(e.attempts).toBe(2);
    expect(e.message).toMatch(/Unknown AuthID or wrong secret/);
  });

  it('Microsoft invalid_grant: "sign in again", and the retry does not call Microsoft again', async () => {
    entra.setAccessTokenTtl(30);
    try {
      const c = await connect();
      entra.resetStats();
      entra.failNext(1, { status: 400, body: { error: 'invalid_grant', error_codes: [70008], error_description: 'AADSTS70008: expired' } });
      const e = (await duplicatiGetToken(oauthUrl, c.authid).catch((x) => x)) as DuplicatiError;
      expect(e.attempts).toBe(2);
      expect(e.message).toMatch(/Microsoft asks you to sign in again: the grant was revoked or has expired/);
      expect(e.message).toContain(`${served.url}/`);
      expect(entra.stats().tokenRequests).toBe(1);
    } finally {
      entra.setAccessTokenTtl(3600);
    }
  });

  it("the app secret rejected: a 5xx naming the owner's fix", async () => {
    entra.setAccessTokenTtl(30);
    try {
      const c = await connect();
      entra.failNext(6, { status: 401, body: { error: 'invalid_client', error_codes: [7000215] } });
      const e = (await duplicatiGetToken(oauthUrl, c.authid, { backoffUnitMs: 1 }).catch((x) => x)) as DuplicatiError;
      expect(e.status).toBeGreaterThanOrEqual(500);
      expect(e.status).not.toBe(503);
      expect(e.message).toMatch(/The broker's Microsoft app was rejected: the app secret is wrong/);
    } finally {
      entra.failNext(0, {});
      entra.setAccessTokenTtl(3600);
    }
  });

  it("Microsoft down for longer than the broker's own retries: a 502, and Duplicati's retry gets through once it is back", async () => {
    entra.setAccessTokenTtl(30);
    try {
      const c = await connect();
      entra.resetStats();
      // The broker tries 4 times within one request (back-off 0.25, 1, 3 s); all 4 fail, so
      // Duplicati's first attempt gets a 5xx and its own retry is what gets the token.
      entra.failNext(4, { status: 503, body: { error: 'temporarily_unavailable' } });
      const r = await duplicatiGetToken(oauthUrl, c.authid, { backoffUnitMs: 5 });
      expect(r.accessToken.length).toBeGreaterThan(0);
      expect(r.attempts).toBe(2);
      expect(entra.stats().byGrant.refresh_token).toBe(5);
      expect(entra.stats().reuseDetected).toBe(0);
    } finally {
      entra.failNext(0, {});
      entra.setAccessTokenTtl(3600);
    }
  }, 20_000);

  it('every error carries X-Reason and exposes it to scripts in the browser', async () => {
    const r = await fetch(oauthUrl, { headers: { 'x-authid': 'garbage' } });
    expect(r.status).toBe(400);
    expect(r.headers.get('x-reason')).toMatch(/malformed/);
    expect(r.headers.get('access-control-expose-headers')).toMatch(/X-Reason/i);
    expect(r.headers.get('cache-control')).toBe('no-store');
  });
});

describe('login pages Duplicati links to', () => {
  it("the login URL in Duplicati's messages (origin + ?type=) lands on the start page for that service", async () => {
    const r = await fetch(loginUrl(oauthUrl, 'sharepoint'));
    expect(r.status).toBe(200);
    const page = await r.text();
    expect(page).toContain('<option value="sharepoint" selected>');
    expect(page).not.toContain('value="onedrivev2"');
  });

  it("the new UI's popup on <oauth-url>?type= is sent to the start page", async () => {
    const r = await fetch(`${oauthUrl}?type=msgroup`, { redirect: 'manual' });
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe('/?type=msgroup');
  });

  it('an unknown type gets a page naming the services this broker offers', async () => {
    const r = await fetch(`${served.url}/?type=googledrive`);
    expect(r.status).toBe(404);
    const page = await r.text();
    for (const s of ['onedrivev2', 'sharepoint', 'msgroup']) expect(page).toContain(s);
  });

  it('the revoke form and its Duplicati target exist', async () => {
    expect((await fetch(`${served.url}/revoke`)).status).toBe(200);
    const c = await connect();
    const r = await fetch(`${served.url}/revoked`, { method: 'POST', body: new URLSearchParams({ authid: c.authid }), headers: { accept: 'text/html' } });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('connection is deleted');
  });
});

describe('legacy UI fetch tokens', () => {
  it('registers on the start page, fills after login, is read once, as JSONP', async () => {
    const token = `t${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const fetchUrl = `${served.url}/fetch?callback=angular.callbacks._0&token=${token}`;
    expect(await (await fetch(fetchUrl)).text()).toBe('/**/angular.callbacks._0({"error":"No such entry"});');
    // Duplicati's page (an allowed origin) opens the start page: the browser sends its origin as Referer.
    const start = await fetch(`${served.url}/?type=onedrivev2&token=${token}`, { headers: { referer: 'http://localhost:8200/ngax/index.html' } });
    expect(await start.text()).toContain(`name="token" value="${token}"`);
    const fetchCookie = start.headers.get('set-cookie')!.split(';')[0]!;
    const waiting = await fetch(fetchUrl);
    expect(waiting.headers.get('content-type')).toMatch(/^application\/javascript/);
    expect(await waiting.text()).toBe('/**/angular.callbacks._0({"wait":"Not ready"});');

    const begun = await fetch(`${served.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: fetchCookie },
      body: new URLSearchParams({ id: 'onedrivev2', passcode: PASSCODE, token }),
    });
    const cookie = begun.headers.get('set-cookie')!.split(';')[0]!;
    const done = await fetch(await entra.login(begun.headers.get('location')!), { headers: { cookie } });
    const authid = authidInPage(await done.text());

    expect(await (await fetch(fetchUrl)).text()).toBe(`/**/angular.callbacks._0(${JSON.stringify({ authid })});`);
    expect(await (await fetch(`${served.url}/fetch?token=${token}`)).json()).toEqual({ error: 'No such entry' });
  });

  it('a token from a link (no allowed page behind it) is ignored: the AuthID never reaches /fetch', async () => {
    const token = `planted${Math.random().toString(36).slice(2)}`;
    const start = await fetch(`${served.url}/?type=onedrivev2&token=${token}`, { headers: { referer: 'https://evil.example/phish' } });
    expect(await start.text()).not.toContain(token);
    expect(start.headers.get('set-cookie')).toBeNull();
    // Even a form that carries the token (without the browser's fetch cookie) does not attach it.
    const begun = await fetch(`${served.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      body: new URLSearchParams({ id: 'onedrivev2', passcode: PASSCODE, token }),
    });
    const cookie = begun.headers.get('set-cookie')!.split(';')[0]!;
    const done = await fetch(await entra.login(begun.headers.get('location')!), { headers: { cookie } });
    expect(done.status).toBe(200);
    expect(await (await fetch(`${served.url}/fetch?token=${token}`)).json()).toEqual({ error: 'No such entry' });
  });

  it('JSON without a callback; missing token; a callback that is not an identifier path is refused', async () => {
    expect(await (await fetch(`${served.url}/fetch`)).json()).toEqual({ error: 'Missing token' });
    const bad = await fetch(`${served.url}/fetch?token=abcdefghij&callback=${encodeURIComponent('alert(1);x')}`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).not.toContain('alert');
  });
});
