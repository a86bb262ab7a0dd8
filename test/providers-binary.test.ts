/**
 * The providers through the binary: `broker init --provider …` adds one app and
 * keeps the others (today's Microsoft settings read as they are), `broker list`
 * shows the apps, Box's single-use refresh tokens survive SIGKILL right after an
 * answer, and `broker revoke` ends the grant at the provider too.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectOverHttp, freePort, newHome, run, serve, type Served } from './support/binary.ts';
import { DuplicatiError, duplicatiGetToken, loginUrl } from './support/duplicati-client.ts';
import { PASSCODE } from './support/passcode.ts';
import { BOX, DROPBOX, GOOGLE, PCLOUD } from './support/providers/presets.ts';
import { type StandIn, startStandIn } from './support/providers/stand-in.ts';

const MICROSOFT_ID = '11111111-2222-3333-4444-555555555555';

async function initProvider(home: string, s: StandIn, port: number, extra: string[] = []) {
  const secretFile = join(home, '..', `${s.kind}-secret`);
  writeFileSync(secretFile, `${s.clientSecret}\n`, { mode: 0o600 });
  return run(
    [
      'init',
      '--non-interactive',
      '--provider',
      s.kind,
      '--client-id',
      s.clientId,
      '--client-secret-file',
      secretFile,
      '--authorize-url',
      s.authorizeUrl,
      '--token-url',
      s.tokenUrl,
      '--revoke-url',
      s.revokeUrl,
      '--public-url',
      `http://127.0.0.1:${port}`,
      '--listen',
      `127.0.0.1:${port}`,
      '--passcode',
      PASSCODE,
      ...extra,
    ],
    { BROKER_HOME: home },
  );
}

const settingsOf = (home: string) => JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8')) as Record<string, unknown>;

describe('init --provider adds one app and keeps the others', () => {
  let google: StandIn;
  beforeAll(async () => {
    google = await startStandIn(GOOGLE);
  });
  afterAll(async () => {
    await google?.close();
  });

  it("today's Microsoft-only settings stay as they are; --provider google adds Google beside them; list shows both apps, no secret", async () => {
    const home = newHome();
    const port = await freePort();
    const msSecret = join(home, '..', 'ms-secret');
    writeFileSync(msSecret, 'ms-secret-value-abc~123\n', { mode: 0o600 });
    const ms = await run(
      ['init', '--non-interactive', '--client-id', MICROSOFT_ID, '--client-secret-file', msSecret, '--listen', `127.0.0.1:${port}`, '--passcode', PASSCODE],
      { BROKER_HOME: home },
    );
    expect(ms.code, ms.stderr).toBe(0);
    const before = settingsOf(home);
    const r = await initProvider(home, google, port);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Apps set up: microsoft, google.');
    const after = settingsOf(home);
    expect(after).toMatchObject({ clientId: MICROSOFT_ID, clientSecret: before.clientSecret, tenant: 'consumers' });
    expect(after.providers).toEqual({
      google: {
        clientId: google.clientId,
        clientSecret: google.clientSecret,
        authorizeUrl: google.authorizeUrl,
        tokenUrl: google.tokenUrl,
        revokeUrl: google.revokeUrl,
      },
    });
    const list = await run(['list'], { BROKER_HOME: home });
    expect(list.stdout).toContain(`Microsoft (client id ${MICROSOFT_ID}`);
    expect(list.stdout).toContain(`Google (client id ${google.clientId}; googledrive, googledocs, gcs)`);
    expect(list.stdout + list.stderr).not.toContain(google.clientSecret);

    // The start page offers both providers, grouped.
    const served = await serve(home);
    try {
      const page = await (await fetch(`${served.url}/`)).text();
      expect(page).toContain('<optgroup label="Microsoft">');
      expect(page).toContain('<optgroup label="Google">');
      expect(served.stderr()).not.toContain(google.clientSecret);
    } finally {
      await served.stop();
    }
  });

  it('--authorize-url with Microsoft is refused (it keeps --authority); a missing secret names the provider', async () => {
    const home = newHome();
    const bad = await run(['init', '--non-interactive', '--client-id', MICROSOFT_ID, '--authorize-url', 'https://example.org/a', '--passcode', PASSCODE], {
      BROKER_HOME: home,
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--authorize-url need --provider other than microsoft');
    const missing = await run(['init', '--non-interactive', '--provider', 'box', '--client-id', 'abc', '--passcode', PASSCODE], { BROKER_HOME: home });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--client-secret-file PATH (or BROKER_CLIENT_SECRET) with --provider box');
  });
});

describe('Box through the binary: single-use refresh tokens never lost, revoked at Box too', () => {
  let box: StandIn;
  let served: Served | undefined;
  let home: string;
  beforeAll(async () => {
    box = await startStandIn(BOX);
    home = newHome();
    const r = await initProvider(home, box, await freePort());
    if (r.code !== 0) throw new Error(r.stderr);
  });
  afterAll(async () => {
    await served?.stop('SIGKILL');
    await box?.close();
  });

  it('answered with a refreshed token, serve SIGKILLed at once, restarted: the next refresh works and Box saw no reuse (3 times)', async () => {
    served = await serve(home);
    // 30 s tokens are below the broker's 35 s minimum: every /refresh spends the refresh token at Box.
    box.setAccessTokenTtl(30);
    const c = await connectOverHttp(served.url, PASSCODE, box.login, { service: 'box.com' });
    box.resetStats();
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } });
      expect(res.status, res.headers.get('x-reason') ?? '').toBe(200);
      expect(((await res.json()) as { type: string }).type).toBe('box.com');
      await served.stop('SIGKILL');
      served = await serve(home);
    }
    const last = await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } });
    expect(last.status, last.headers.get('x-reason') ?? '').toBe(200);
    expect(box.stats.refreshes).toBe(4);
    expect(box.stats.reuse).toBe(0);
    box.setAccessTokenTtl(3600);
  });

  it("Duplicati's client: its login link lands on the Box start page, /refresh answers as for Microsoft, a dead grant says sign in again naming Box", async () => {
    served ??= await serve(home);
    const oauthUrl = `${served.url}/refresh`;
    const start = await fetch(loginUrl(oauthUrl, 'box.com'));
    expect(start.status).toBe(200);
    const page = await start.text();
    expect(page).toMatch(/<option value="box.com" selected>/);
    expect(page).toContain('Continue to Box');
    const c = await connectOverHttp(served.url, PASSCODE, box.login, { service: 'box.com', username: 'duplicati' });
    const got = await duplicatiGetToken(oauthUrl, c.authid, { module: 'box.com' });
    expect(got.body).toMatchObject({ type: 'box.com', token_type: 'Bearer' });
    expect(got.attempts).toBe(1);
    box.expireAll();
    box.setAccessTokenTtl(30);
    const d = await connectOverHttp(served.url, PASSCODE, box.login, { service: 'box.com', username: 'duplicati-2' });
    box.expireAll();
    const err = await duplicatiGetToken(oauthUrl, d.authid, { module: 'box.com' }).catch((e: DuplicatiError) => e);
    expect(err).toBeInstanceOf(DuplicatiError);
    expect((err as DuplicatiError).status).toBe(400);
    expect((err as DuplicatiError).message).toContain('Box asks you to sign in again');
    expect((err as DuplicatiError).message).toContain('?type=box.com');
    box.setAccessTokenTtl(3600);
  });

  it('`broker revoke <AuthID>` and `broker revoke -` revoke at Box too; a keyid alone says where to remove access', async () => {
    served ??= await serve(home);
    const a = await connectOverHttp(served.url, PASSCODE, box.login, { service: 'box.com', username: 'a' });
    const b = await connectOverHttp(served.url, PASSCODE, box.login, { service: 'box.com', username: 'b' });
    const k = await connectOverHttp(served.url, PASSCODE, box.login, { service: 'box.com', username: 'k' });
    const live = box.liveGrants();
    const byAuthid = await run(['revoke', a.authid], { BROKER_HOME: home });
    expect(byAuthid.code, byAuthid.stderr).toBe(0);
    expect(byAuthid.stdout).toContain('Box confirmed: the grant is revoked there too.');
    const byStdin = await run(['revoke', '-'], { BROKER_HOME: home }, { input: `${b.authid}\n` });
    expect(byStdin.code, byStdin.stderr).toBe(0);
    expect(byStdin.stdout).toContain('Box confirmed');
    expect(box.liveGrants()).toBe(live - 2);
    const byKeyid = await run(['revoke', k.keyid], { BROKER_HOME: home });
    expect(byKeyid.code).toBe(0);
    expect(byKeyid.stdout).toContain(`remove the app's access at Box`);
    expect(box.liveGrants()).toBe(live - 2);
    for (const c of [a, b, k]) expect((await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } })).status).toBe(410);
  });

  it('a running serve picks up a Google app added by `init --provider google` (settings reload), and Box keeps working', async () => {
    served ??= await serve(home);
    const google = await startStandIn(GOOGLE);
    try {
      const before = await (await fetch(`${served.url}/?type=gcs`)).text();
      expect(before).toContain('no Google app set up');
      const port = Number(new URL(served.url).port);
      const r = await initProvider(home, google, port);
      expect(r.code, r.stderr).toBe(0);
      let page = '';
      for (let i = 0; i < 100 && !page.includes('<optgroup label="Google">'); i++) {
        await new Promise((res) => setTimeout(res, 100));
        page = await (await fetch(`${served.url}/`)).text();
      }
      expect(page).toContain('<optgroup label="Google">');
      expect(page).toContain('<optgroup label="Box">');
      const c = await connectOverHttp(served.url, PASSCODE, google.login, { service: 'gcs' });
      expect((await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } })).status).toBe(200);
      expect(served.stderr()).not.toContain(google.clientSecret);
      expect(served.stderr()).not.toContain(box.clientSecret);
    } finally {
      await google.close();
    }
  });

  it('a failed call at Box is reported naming Box, with another exit code, and the local revoke still happens', async () => {
    served ??= await serve(home);
    const c = await connectOverHttp(served.url, PASSCODE, box.login, { service: 'box.com', username: 'f' });
    const s = settingsOf(home) as { providers: { box: Record<string, string> } };
    s.providers.box.revokeUrl = `${box.base}/nowhere`;
    writeFileSync(join(home, 'settings.json'), JSON.stringify(s), { mode: 0o600 });
    const r = await run(['revoke', c.authid], { BROKER_HOME: home });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('Box did not confirm the revocation');
    expect(r.stdout).toContain(`Revoked ${c.keyid}`);
    expect((await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } })).status).toBe(410);
  });
});

describe.each([
  ['google', 'googledocs', GOOGLE],
  ['dropbox', 'dropbox', DROPBOX],
  ['box', 'box.com', BOX],
] as const)('%s through the binary: init, connect, refresh after expiry, restart, refresh again, revoke', (_kind, service, behaviour) => {
  let s: StandIn;
  let served: Served | undefined;
  beforeAll(async () => {
    s = await startStandIn(behaviour);
  });
  afterAll(async () => {
    await served?.stop('SIGKILL');
    await s?.close();
  });

  it('the whole life of one connection, and the grant is dead at the provider after `broker revoke -`', async () => {
    const home = newHome();
    const r = await initProvider(home, s, await freePort());
    expect(r.code, r.stderr).toBe(0);
    served = await serve(home);
    const page = await (await fetch(`${served.url}/`)).text();
    expect(page).toContain(`value="${service}"`);
    expect(page).not.toContain('value="onedrivev2"');
    // 30 s tokens are below the broker's 35 s minimum: every /refresh after the first goes to the provider.
    s.setAccessTokenTtl(30);
    const c = await connectOverHttp(served.url, PASSCODE, s.login, { service });
    s.resetStats();
    const get = async () => {
      const res = await fetch(`${served!.url}/refresh`, { headers: { 'x-authid': c.authid } });
      expect(res.status, res.headers.get('x-reason') ?? '').toBe(200);
      return (await res.json()) as { access_token: string; type: string };
    };
    expect((await get()).type).toBe(service);
    await served.stop();
    served = await serve(home);
    expect((await get()).type).toBe(service);
    expect(s.stats.refreshes).toBe(2);
    expect(s.stats.reuse).toBe(0);
    expect(s.stats.refused).toEqual([]);
    const live = s.liveGrants();
    const revoked = await run(['revoke', '-'], { BROKER_HOME: home }, { input: c.authid });
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain('confirmed: the grant is revoked there too');
    expect(s.liveGrants()).toBe(live - 1);
    expect((await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } })).status).toBe(410);
    expect(served.stderr()).not.toContain(s.clientSecret);
  });

  it('`broker doctor` checks the app at the provider: accepted, then a wrong secret is named as the app misconfigured', async () => {
    const home = newHome();
    const r = await initProvider(home, s, await freePort());
    expect(r.code, r.stderr).toBe(0);
    const name = { google: 'Google', dropbox: 'Dropbox', box: 'Box' }[_kind];
    const good = await run(['doctor'], { BROKER_HOME: home });
    expect(good.stdout).toContain(`ok    ${name} app: client id and secret accepted by ${name}`);
    const settings = settingsOf(home) as { providers: Record<string, Record<string, string>> };
    settings.providers[_kind]!.clientSecret = 'a-wrong-secret';
    writeFileSync(join(home, 'settings.json'), JSON.stringify(settings), { mode: 0o600 });
    const bad = await run(['doctor'], { BROKER_HOME: home });
    expect(bad.stdout).toContain(`FAIL  ${name} app: ${name} rejected the app (invalid_client) [invalid_client]`);
    expect(bad.code).toBe(3);
    expect(bad.stdout).not.toContain('a-wrong-secret');
  });
});

describe('pCloud through the binary', () => {
  let s: StandIn;
  let served: Served | undefined;
  beforeAll(async () => {
    s = await startStandIn(PCLOUD);
  });
  afterAll(async () => {
    await served?.stop('SIGKILL');
    await s?.close();
  });

  it('init, connect: the page shows the access token, the store holds nothing', async () => {
    const home = newHome();
    const r = await initProvider(home, s, await freePort());
    expect(r.code, r.stderr).toBe(0);
    served = await serve(home);
    const c = await connectOverHttp(served.url, PASSCODE, s.login, { service: 'pcloud' });
    expect(c.authid).toMatch(/^pcloud-at-/);
    const list = await run(['list', '--json'], { BROKER_HOME: home });
    expect(JSON.parse(list.stdout)).toEqual([]);
    expect(served.stderr()).not.toContain(c.authid);
    expect(served.stderr()).not.toContain(s.clientSecret);
  });
});
