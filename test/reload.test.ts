/**
 * New settings reach a running `serve`: on SIGHUP (systemctl reload) and, without
 * it, when settings.json changes. Through the compiled binary, against the local
 * provider; `broker init` writes the changes, as an owner would.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LOOPBACK_CALLBACK, configuredHome, connectOverHttp, initHome, serve, type Served } from './support/binary.ts';
import { useEntra } from './support/hooks.ts';
import { OTHER_PASSCODE, PASSCODE } from './support/passcode.ts';

const DUPLICATI = 'http://localhost:8200';
const OTHER_UI = 'https://backup-ui.example';

const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
let served: Served | undefined;
afterEach(async () => {
  await served?.stop();
  served = undefined;
});

/** Waits (bounded) until serve's log has `count` lines with `event`; the event, not a time, is what the test waits for. */
async function logged(s: Served, event: RegExp, count = 1): Promise<string[]> {
  for (let i = 0; i < 150; i++) {
    const lines = s
      .stderr()
      .split('\n')
      .filter((l) => event.test(l));
    if (lines.length >= count) return lines;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`serve never logged ${event} ${count} time(s):\n${s.stderr()}`);
}

const postLogin = (url: string, passcode: string) =>
  fetch(`${url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ id: 'onedrivev2', passcode }),
  });

/** The origins the page that shows a new AuthID will postMessage it to. */
function postMessageOrigins(page: string): string[] {
  return JSON.parse(/const origins = (\[[^\]]*\]);/.exec(page)![1]!) as string[];
}

async function loggedInPage(url: string, passcode: string, username: string): Promise<string> {
  const started = await postLogin(url, passcode);
  expect(started.status).toBe(302);
  const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
  const callback = await entra.login(started.headers.get('location')!, { username });
  const res = await fetch(callback, { headers: { cookie } });
  expect(res.status).toBe(200);
  return res.text();
}

describe('a new passcode from `broker init`', () => {
  it('on SIGHUP: the old passcode is refused at once and the new one works, without a restart', async () => {
    const { home, port } = await configuredHome(entra, PASSCODE);
    served = await serve(home);
    expect((await postLogin(served.url, PASSCODE)).status).toBe(302);

    const init = await initHome({
      home,
      port,
      passcode: OTHER_PASSCODE,
      clientId: entra.clientId,
      clientSecret: entra.clientSecret,
      authority: entra.authority,
    });
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/A running `broker serve` applies the new settings/);
    served.child.kill('SIGHUP');
    await logged(served, /settings\.reloaded trigger=SIGHUP/);

    expect((await postLogin(served.url, PASSCODE)).status).toBe(403);
    expect((await postLogin(served.url, OTHER_PASSCODE)).status).toBe(302);
    expect(served.child.pid).toBeGreaterThan(0);
    expect(served.child.exitCode).toBeNull();
  });

  it('without a signal: serve notices settings.json changed and applies it', async () => {
    const { home, port } = await configuredHome(entra, PASSCODE);
    served = await serve(home);
    await initHome({ home, port, passcode: OTHER_PASSCODE, clientId: entra.clientId, clientSecret: entra.clientSecret, authority: entra.authority });
    await logged(served, /settings\.reloaded trigger=settings\.json_changed/);
    expect((await postLogin(served.url, PASSCODE)).status).toBe(403);
    expect((await postLogin(served.url, OTHER_PASSCODE)).status).toBe(302);
  });
});

describe('allowed origins', () => {
  it('a removed origin no longer receives the AuthID by postMessage', async () => {
    const { home, port } = await configuredHome(entra, PASSCODE, { allowedOrigins: [DUPLICATI, OTHER_UI] });
    served = await serve(home);
    expect(postMessageOrigins(await loggedInPage(served.url, PASSCODE, 'origins-before'))).toEqual([DUPLICATI, OTHER_UI]);

    await initHome({
      home,
      port,
      passcode: PASSCODE,
      clientId: entra.clientId,
      clientSecret: entra.clientSecret,
      authority: entra.authority,
      allowedOrigins: [DUPLICATI],
    });
    served.child.kill('SIGHUP');
    await logged(served, /settings\.reloaded trigger=SIGHUP/);
    expect(postMessageOrigins(await loggedInPage(served.url, PASSCODE, 'origins-after'))).toEqual([DUPLICATI]);
  });
});

describe('a rotated app secret', () => {
  it('is the one sent with the next refresh', async () => {
    const { home, port } = await configuredHome(entra, PASSCODE);
    served = await serve(home);
    // Tokens too short-lived to serve from memory: every /refresh goes to the provider.
    entra.setAccessTokenTtl(30);
    try {
      const c = await connectOverHttp(served.url, PASSCODE, entra.login, { username: 'secret-rotation' });
      const refresh = () => fetch(`${served!.url}/refresh`, { headers: { 'x-authid': c.authid } });
      expect((await refresh()).status).toBe(200);

      // In Entra: a new secret, the old one deleted.
      const newSecret = `new8Q~${'r'.repeat(30)}`;
      entra.rotateClientSecret(newSecret);
      const refused = await refresh();
      expect(refused.status).toBe(502);
      expect(refused.headers.get('x-reason')).toMatch(/secret is wrong/);

      await initHome({ home, port, passcode: PASSCODE, clientId: entra.clientId, clientSecret: newSecret, authority: entra.authority });
      served.child.kill('SIGHUP');
      await logged(served, /settings\.reloaded trigger=SIGHUP/);
      const before = entra.stats().byGrant.refresh_token;
      const res = await refresh();
      expect(res.status, res.headers.get('x-reason') ?? '').toBe(200);
      expect(entra.stats().byGrant.refresh_token).toBe(before + 1);
      expect(served.stderr()).not.toContain(newSecret);
    } finally {
      entra.setAccessTokenTtl(3600);
      entra.rotateClientSecret(entra.clientSecret);
    }
  });
});

describe('what cannot change without a restart, and a broken file', () => {
  it('a new listen address and metrics are named in a warning; the server keeps serving on its socket', async () => {
    const { home, port } = await configuredHome(entra, PASSCODE);
    served = await serve(home);
    const path = join(home, 'settings.json');
    const s = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    writeFileSync(path, JSON.stringify({ ...s, listen: `127.0.0.1:${port + 1}`, metrics: true }), { mode: 0o600 });
    served.child.kill('SIGHUP');
    const [warning] = await logged(served, /settings\.restart_needed/);
    expect(warning).toMatch(/settings=listen,metrics\b/);
    expect((await fetch(`${served.url}/healthz`)).status).toBe(200);
  });

  it('a settings file that became invalid: the old settings stay, an error is logged, serving goes on', async () => {
    const { home } = await configuredHome(entra, PASSCODE);
    served = await serve(home);
    const path = join(home, 'settings.json');
    const s = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    writeFileSync(path, JSON.stringify({ ...s, clientId: 'not-a-guid', passcodeHash: 'nothing' }), { mode: 0o600 });
    served.child.kill('SIGHUP');
    const [error] = await logged(served, /settings\.reload_failed/);
    expect(error).toMatch(/\berror\b.*error=config_invalid/);
    writeFileSync(path, '{ half a file', { mode: 0o600 });
    served.child.kill('SIGHUP');
    await logged(served, /settings\.reload_failed/, 2);
    expect((await postLogin(served.url, PASSCODE)).status).toBe(302);
    expect(served.child.exitCode).toBeNull();
  });
});
