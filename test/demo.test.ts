/**
 * `npm run demo` as the README's quick start promises: it prints the URL, the
 * passcode and the curl line, a login at the local provider yields an AuthID
 * that refreshes, and Ctrl-C (SIGINT) leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from './support/binary.ts';
import { startEntra, type Entra } from './support/entra.ts';
import { authidInPage } from './support/authid.ts';

// Only its login automation is used: it plays the browser against any provider of this kind, here the demo's own.
let browser: Entra;
beforeAll(async () => {
  browser = await startEntra();
});
afterAll(async () => {
  await browser?.close();
});

it('npm run demo: URL, passcode and curl line; a login works; Ctrl-C cleans up', async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [resolve(import.meta.dirname, '../scripts/demo.ts')], {
    env: { ...process.env, BROKER_DEMO_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', () => {});
  const exited = new Promise<number | null>((r) => child.on('close', r));
  try {
    await expect.poll(() => out, { timeout: 15_000, interval: 100 }).toMatch(/Passcode\s+\S+/);
    expect(out).toContain(`Open            http://localhost:${port}/`);
    expect(out).toMatch(/curl -fsS -H "X-AuthID: \$BROKER_AUTHID" http:\/\/localhost:\d+\/refresh/);
    const passcode = /Passcode\s+(\S+)/.exec(out)![1]!;
    const home = /deletes (\S+)\)/.exec(out)![1]!;
    expect(existsSync(home)).toBe(true);

    const base = `http://127.0.0.1:${port}`;
    const started = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ id: 'onedrivev2', passcode }) });
    expect(started.status).toBe(302);
    const cookie = started.headers.get('set-cookie')!.split(';')[0]!;
    const callback = new URL(await browser.login(started.headers.get('location')!, { username: 'demo-user' }));
    expect(callback.host).toBe(`localhost:${port}`);
    const page = await (await fetch(`${base}${callback.pathname}${callback.search}`, { headers: { cookie } })).text();
    const authid = authidInPage(page);
    const token = await fetch(`${base}/refresh`, { headers: { 'x-authid': authid } });
    expect(token.status).toBe(200);
    expect(((await token.json()) as { type: string }).type).toBe('onedrivev2');

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(existsSync(home)).toBe(false);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
