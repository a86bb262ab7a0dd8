/**
 * Running it for real: headless connect, doctor, HTTPS with certificate reload,
 * the plain-http guard, JSON logs and metrics. All through the compiled binary.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BINARY, LOOPBACK_CALLBACK, configuredHome, connectOverHttp, freePort, newHome, run, serve } from './support/binary.ts';
import { AUTHID, authidInPage } from './support/authid.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';

const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });

function configured(): Promise<{ home: string; port: number }> {
  return configuredHome(entra, PASSCODE);
}

describe('broker connect (no browser on this machine)', () => {
  /** Runs `broker connect`, waits for the URL it prints, and pastes what `answer` makes of it. */
  async function connectPasting(home: string, answer: (authorizeUrl: string) => Promise<string>): Promise<{ code: number | null; out: string; err: string }> {
    const child = spawn(BINARY, ['connect'], { env: { PATH: process.env.PATH ?? '', BROKER_HOME: home }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    const closed = new Promise<number | null>((r) => child.on('close', r));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no URL printed:\n${err}`)), 10_000);
      child.stderr.on('data', (d) => {
        err += d;
        const m = /(http:\/\/127\.0\.0\.1:\d+\/consumers\/oauth2\/v2\.0\/authorize\?\S+)/.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    child.stdin.end(`${await answer(url)}\n`);
    const code = await closed;
    return { code, out, err };
  }

  it('prints the Microsoft URL, takes the pasted final address, and prints the authid', async () => {
    const { home } = await configured();
    const r = await connectPasting(home, (url) => entra.login(url, { username: 'nas-owner' }));
    expect(r.code, r.err).toBe(0);
    const authid = r.out.trim();
    expect(authid).toMatch(AUTHID);
    expect(r.err).toContain('nas-owner');
    const served = await serve(home);
    try {
      expect((await fetch(`${served.url}/refresh`, { headers: { 'x-authid': authid } })).status).toBe(200);
    } finally {
      await served.stop();
    }
  });

  it('refuses an address that is not the redirect URI, and a replayed one', async () => {
    const { home } = await configured();
    const r = await run(['connect'], { BROKER_HOME: home }, { input: 'https://evil.example/logged-in?code=x&state=y\n' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not start with/);

    // A real replay: the address one `broker connect` was finished with, pasted again into the next one.
    let callback = '';
    const first = await connectPasting(home, async (url) => (callback = await entra.login(url, { username: 'nas-replay' })));
    expect(first.code, first.err).toBe(0);
    expect(new URL(callback).searchParams.get('code')).toBeTruthy();
    entra.resetStats();
    const replay = await connectPasting(home, async () => callback);
    expect(replay.code, replay.err).toBe(7); // EXIT.auth: login_state_invalid
    expect(replay.err).toMatch(/this login is unknown, was already used, or has expired/i);
    expect(replay.out.trim()).toBe('');
    // Refused before the code went to Microsoft again, and nothing new was stored.
    expect(entra.stats().byGrant.authorization_code ?? 0).toBe(0);
    const list = JSON.parse((await run(['list', '--json'], { BROKER_HOME: home })).stdout) as unknown[];
    expect(list.length).toBe(1);
  });
});

describe('broker doctor', () => {
  it('passes on a good setup', async () => {
    const { home } = await configured();
    const r = await run(['doctor'], { BROKER_HOME: home });
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ok +app registration: client id and secret accepted/);
  });

  it('a wrong secret: exit 3 with the fix', async () => {
    const { home } = await configured();
    const r = await run(['doctor'], { BROKER_HOME: home, BROKER_CLIENT_SECRET: 'not-the-secret' });
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/FAIL +app registration: the app secret is wrong/);
    expect(r.stdout).toMatch(/fix: /);
    expect(r.stdout).not.toContain('not-the-secret');
  });

  it('Microsoft unreachable: exit 6', async () => {
    const home = newHome();
    const r0 = await run(['init', '--non-interactive', '--client-id', entra.clientId, '--authority', `http://127.0.0.1:${await freePort()}`], {
      BROKER_HOME: home,
      BROKER_CLIENT_SECRET: 'x~secret',
    });
    expect(r0.code).toBe(0);
    const r = await run(['doctor'], { BROKER_HOME: home });
    expect(r.code).toBe(6);
    expect(r.stdout).toMatch(/FAIL +authority: .* cannot be reached/);
  });

  it('a token endpoint that answers with a redirect: the secret is not sent on to its target', async () => {
    // Stands in for a wrong --authority, or a proxy on the way, that sends the POST elsewhere with a 307.
    const seen: { path: string; body: string }[] = [];
    const server: Bun.Server<undefined> = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req): Promise<Response> {
        const path = new URL(req.url).pathname;
        seen.push({ path, body: await req.text() });
        if (path === '/collect') return Response.json({ error: 'invalid_grant' }, { status: 400 });
        return new Response(null, { status: 307, headers: { location: `http://127.0.0.1:${server.port}/collect` } });
      },
    });
    try {
      const home = newHome();
      const secret = 'x~doctor-redirect-secret';
      const r0 = await run(['init', '--non-interactive', '--client-id', entra.clientId, '--authority', `http://127.0.0.1:${server.port}`], {
        BROKER_HOME: home,
        BROKER_CLIENT_SECRET: secret,
      });
      expect(r0.code).toBe(0);
      const r = await run(['doctor'], { BROKER_HOME: home });
      expect(seen.map((s) => s.path)).toEqual(['/consumers/oauth2/v2.0/token']);
      expect(seen[0]!.body).toContain('client_secret=');
      expect(r.code).not.toBe(0);
      expect(r.stdout).toMatch(/FAIL +authority: .*redirect/);
      expect(r.stdout).not.toContain(secret);
    } finally {
      await server.stop(true);
    }
  });

  it('files readable by others: exit 5 with the chmod to run', async () => {
    const { home } = await configured();
    chmodSync(join(home, 'settings.json'), 0o644);
    const r = await run(['doctor'], { BROKER_HOME: home });
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(/FAIL +permissions: readable by others: settings.json is 644/);
  });

  it('no settings: exit 3', async () => {
    const r = await run(['doctor'], { BROKER_HOME: newHome() });
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/FAIL +settings: No settings/);
  });
});

describe('serve: HTTPS, the plain-http guard, logs and metrics', () => {
  const dir = mkdtempSync(join(tmpdir(), 'broker-tls-'));
  const cert = (name: string) => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, `${name}.key`),
        '-out',
        join(dir, `${name}.crt`),
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
  };
  const subject = (port: number) =>
    execFileSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`], { input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] }).match(
      /subject=.*CN ?= ?(\S+)/,
    )?.[1];

  it('serves HTTPS and swaps the certificate on SIGHUP without dropping an in-flight request', async () => {
    cert('first');
    cert('second');
    const { home } = await configured();
    const served = await serve(home, {}, ['--tls-cert', join(dir, 'first.crt'), '--tls-key', join(dir, 'first.key')]);
    try {
      expect(served.url).toMatch(/^https:/);
      const port = Number(new URL(served.url).port);
      expect(subject(port)).toBe('first');
      const c = await connectViaTls(served.url);
      // A slow refresh is in flight while the certificate changes.
      entra.setAccessTokenTtl(30);
      entra.setTokenDelay(800);
      try {
        const inflight = fetch(`${served.url}/refresh`, { headers: { 'x-authid': c }, tls: { rejectUnauthorized: false } } as RequestInit);
        await new Promise((r) => setTimeout(r, 200));
        execFileSync('cp', [join(dir, 'second.crt'), join(dir, 'first.crt')]);
        execFileSync('cp', [join(dir, 'second.key'), join(dir, 'first.key')]);
        served.child.kill('SIGHUP');
        await waitFor(() => served.stderr().includes('tls.reloaded'));
        expect(subject(port)).toBe('second');
        expect((await inflight).status).toBe(200);
      } finally {
        entra.setTokenDelay(0);
        entra.setAccessTokenTtl(3600);
      }
    } finally {
      await served.stop();
    }
  });

  it('refuses a plain-http public URL that is not localhost unless --insecure-http', async () => {
    const { home } = await configured();
    const settingsPath = join(home, 'settings.json');
    const s = JSON.parse(await Bun.file(settingsPath).text());
    s.publicUrl = 'http://nas.example.lan:8080';
    writeFileSync(settingsPath, JSON.stringify(s), { mode: 0o600 });
    const r = await run(['serve'], { BROKER_HOME: home });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/plain http on a host other than localhost/);
    expect(r.stderr).toMatch(/--insecure-http/);
    const served = await serve(home, {}, ['--insecure-http']);
    await served.stop();
  });

  it('warns when it listens beyond this machine without TLS', async () => {
    const { home } = await configured();
    const port = await freePort();
    const served = await serve(home, {}, ['--listen', `0.0.0.0:${port}`]);
    await served.stop();
    expect(served.stderr()).toMatch(/warn serve\.plain_http_on_network/);
    const local = await serve(home);
    await local.stop();
    expect(local.stderr()).not.toMatch(/plain_http_on_network/);
  });

  it('a port already in use: exit 1 (worth a restart), not the configuration code 3', async () => {
    const { home } = await configured();
    const first = await serve(home);
    try {
      const second = await run(['serve'], { BROKER_HOME: home });
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/broker: error: cannot listen on .*EADDRINUSE/);
    } finally {
      await first.stop();
    }
  });

  it('JSON log lines, one per request, never a secret; with json every line on stderr is JSON', async () => {
    const { home } = await configured();
    const served = await serve(home, {}, ['--log-format', 'json']);
    const c = await connectOverHttp(served.url, PASSCODE, entra.login);
    await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } });
    expect(await served.stop()).toBe(0);
    const lines = served
      .stderr()
      .split('\n')
      .filter((l) => l !== '');
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line on stderr: ${l}`);
      }
    });
    // The lines a person reads at start-up are events too, and keep their text.
    expect(parsed.find((l) => l.event === 'serve.listening')).toMatchObject({ level: 'info', url: served.url });
    expect(String(parsed.find((l) => l.event === 'serve.connect_here')?.message)).toMatch(/^Connect a OneDrive at http:/);
    expect(parsed.at(-1)).toMatchObject({ event: 'serve.stopped' });
    const requests = parsed.filter((l) => l.event === 'request');
    expect(requests.find((r) => r.route === '/refresh')).toMatchObject({ method: 'GET', status: 200, keyid: c.keyid.slice(0, 11) });
    expect(typeof requests[0]!.ms).toBe('number');
    expect(served.stderr()).not.toContain(c.authid.split(':')[1]);
  });

  it('with json, a failure to start is a JSON line too (and the exit code is the usual one)', async () => {
    const { home, port } = await configured();
    const first = await serve(home);
    try {
      const second = await run(['serve', '--log-format', 'json', '--listen', `127.0.0.1:${port}`], { BROKER_HOME: home });
      expect(second.code).toBe(1);
      const lines = second.stderr
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.at(-1)).toMatchObject({ level: 'error', event: 'serve.failed', error: 'listen_failed' });
      expect(String(lines.at(-1)!.message)).toMatch(/Cannot listen on 127\.0\.0\.1/);
    } finally {
      await first.stop();
    }
  });

  it('metrics on the main listener when enabled, and on a separate address', async () => {
    const { home } = await configured();
    const plain = await serve(home);
    expect((await fetch(`${plain.url}/metrics`)).status).toBe(404);
    await plain.stop();

    const served = await serve(home, {}, ['--metrics']);
    try {
      const c = await connectOverHttp(served.url, PASSCODE, entra.login);
      await fetch(`${served.url}/refresh`, { headers: { 'x-authid': c.authid } });
      await fetch(`${served.url}/refresh`, { headers: { 'x-authid': 'bad' } });
      const text = await (await fetch(`${served.url}/metrics`)).text();
      expect(text).toMatch(/broker_http_requests_total\{route="\/refresh",status="200"\} 1/);
      expect(text).toMatch(/broker_refresh_total\{outcome="cache_hit"\} 1/);
      expect(text).toMatch(/broker_refresh_total\{outcome="rejected"\} 1/);
      expect(text).toMatch(/broker_connections\{state="active"\} 1/);
      expect(text).toMatch(/# TYPE broker_upstream_request_duration_seconds histogram/);
      expect(text).not.toContain(c.keyid);
    } finally {
      await served.stop();
    }

    const mport = await freePort();
    const separate = await serve(home, {}, ['--metrics-listen', `127.0.0.1:${mport}`]);
    try {
      expect((await fetch(`${separate.url}/metrics`)).status).toBe(404);
      expect(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text()).toMatch(/broker_connections/);
    } finally {
      await separate.stop();
    }
  });
});

// Found by mutation testing.
describe("serve's request log names the error code", () => {
  it('a refused /refresh is logged with its status and error code (text and JSON)', async () => {
    const { home } = await configured();

    const text = await serve(home);
    expect((await fetch(`${text.url}/refresh`)).status).toBe(400);
    expect((await fetch(`${text.url}/refresh`, { headers: { 'x-authid': 'nonsense' } })).status).toBe(400);
    await text.stop();
    expect(text.stderr()).toMatch(/request method=GET route=\/refresh status=400 .*error=authid_missing/);
    expect(text.stderr()).toMatch(/request method=GET route=\/refresh status=400 .*error=authid_malformed/);

    const json = await serve(home, {}, ['--log-format', 'json']);
    expect((await fetch(`${json.url}/nowhere`)).status).toBe(404);
    await json.stop();
    const requests = json
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === 'request');
    expect(requests).toContainEqual(expect.objectContaining({ route: 'other', status: 404, error: 'not_found' }));
  });
});

async function connectViaTls(url: string): Promise<string> {
  const opts = { tls: { rejectUnauthorized: false } } as RequestInit;
  const started = await fetch(`${url}/login`, {
    ...opts,
    method: 'POST',
    redirect: 'manual',
    body: new URLSearchParams({ id: 'onedrivev2', passcode: PASSCODE }),
  });
  const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
  const callback = new URL(await entra.login(started.headers.get('location')!));
  const res = await fetch(`${url}/logged-in${callback.search}`, { ...opts, headers: { cookie } });
  return authidInPage(await res.text());
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}
