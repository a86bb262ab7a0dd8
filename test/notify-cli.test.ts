/**
 * Notifications through the binary: `init` records the targets, `broker notify
 * test` reports each one, `doctor` names an unreachable one, and a running
 * `serve` sends (here: connection.created with --notify-all) and follows a
 * settings change.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { configuredHome, connectOverHttp, freePort, LOOPBACK_CALLBACK, run, serve } from './support/binary.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';
import { startReceiver } from './support/receiver.ts';

const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
const rx = startReceiver();
afterAll(() => rx.close());

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await Bun.sleep(20);
  }
}

describe('broker notify test', () => {
  it('init records the targets; each gets a test event and its own result line; a dead one fails with exit 6', async () => {
    const { home } = await configuredHome(entra, PASSCODE);
    const dead = `http://127.0.0.1:${await freePort()}/hook`;
    const r0 = await run(['init', '--non-interactive', '--notify-url', `${rx.url}/a`, '--notify-url', `${rx.url}/b#ntfy`, '--notify-all'], {
      BROKER_HOME: home,
    });
    expect(r0.code, r0.stderr).toBe(0);
    const before = rx.received.length;
    const r = await run(['notify', 'test'], { BROKER_HOME: home });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok +http:\/\/127\.0\.0\.1:\d+\/… \(json\)$/m);
    expect(r.stdout).toMatch(/^ok +http:\/\/127\.0\.0\.1:\d+\/… \(ntfy\)$/m);
    const got = rx.received.slice(before);
    expect(got.map((g) => g.path).sort()).toEqual(['/a', '/b']);
    expect(JSON.parse(got.find((g) => g.path === '/a')!.body).event).toBe('notify.test');
    expect(got.find((g) => g.path === '/b')!.headers.title).toBe('broker: Test notification');

    const r2 = await run(['notify', 'test'], { BROKER_HOME: home, BROKER_NOTIFY_URLS: `${rx.url}/c,${dead}` });
    expect(r2.code).toBe(6);
    expect(r2.stdout).toMatch(/^FAIL +http:\/\/127\.0\.0\.1:\d+\/… \(json\): /m);

    const doctor = await run(['doctor'], { BROKER_HOME: home, BROKER_NOTIFY_URLS: dead });
    expect(doctor.stdout).toMatch(/FAIL +notifications: http:\/\/127\.0\.0\.1:\d+\/… cannot be reached/);
    // A command's program is checked; an assignment before it may be a password and is never shown.
    const noProgram = await run(['doctor'], { BROKER_HOME: home, BROKER_NOTIFY_COMMAND: 'SMTP_PASS=hunter2 no-such-mailer-xyz -t' });
    expect(noProgram.stdout).toMatch(/FAIL +notifications: the command no-such-mailer-xyz is not found/);
    expect(noProgram.stdout + noProgram.stderr).not.toContain('hunter2');
    const good = await run(['doctor'], { BROKER_HOME: home });
    expect(good.stdout).toMatch(/ok +notifications: 2 targets reachable/);
  });

  it('without targets: a usage error naming the flags', async () => {
    const { home } = await configuredHome(entra, PASSCODE);
    const r = await run(['notify', 'test'], { BROKER_HOME: home });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no notification targets/);
    expect(r.stderr).toMatch(/--notify-url/);
  });
});

describe('serve', () => {
  it('checks the secret expiry a moment after start: 5 days left is the 7-day notice, sent once', async () => {
    const { home } = await configuredHome(entra, PASSCODE);
    const expires = new Date(Date.now() + 5 * 86_400_000).toISOString().slice(0, 10);
    expect((await run(['init', '--non-interactive', '--secret-expires', expires, '--notify-url', `${rx.url}/expiry`], { BROKER_HOME: home })).code).toBe(0);
    const s = await serve(home);
    try {
      await until(() => rx.received.some((r) => r.path === '/expiry'), 10_000);
      const body = JSON.parse(rx.received.find((r) => r.path === '/expiry')!.body);
      expect(body).toMatchObject({ event: 'app.secret_expiring', severity: 'warning', keyid: null });
      expect(body.message).toContain(expires);
    } finally {
      await s.stop();
    }
    // A restart checks again; the store remembers it was sent.
    const s2 = await serve(home);
    try {
      await until(() => s2.stderr().includes('notify.targets'));
      await Bun.sleep(6000);
      expect(rx.received.filter((r) => r.path === '/expiry')).toHaveLength(1);
    } finally {
      await s2.stop();
    }
  }, 30_000);

  it('sends connection.created with --notify-all, and a new target in settings.json applies without a restart', async () => {
    const { home } = await configuredHome(entra, PASSCODE);
    const s = await serve(home, { BROKER_NOTIFY_URLS: `${rx.url}/serve1` }, ['--notify-all']);
    try {
      const c = await connectOverHttp(s.url, PASSCODE, entra.login);
      await until(() => rx.received.some((r) => r.path === '/serve1'));
      const body = JSON.parse(rx.received.find((r) => r.path === '/serve1')!.body);
      expect(body).toMatchObject({ event: 'connection.created', keyid: c.keyid.slice(0, 11), service: 'onedrivev2' });
      expect(JSON.stringify(body)).not.toContain(c.authid.split(':')[1]!);
    } finally {
      await s.stop();
    }
    // Recorded by init instead, and changed while serve runs.
    const s2 = await serve(home, {}, []);
    try {
      expect((await run(['init', '--non-interactive', '--notify-url', `${rx.url}/serve2`, '--notify-all'], { BROKER_HOME: home })).code).toBe(0);
      await until(() => s2.stderr().includes('settings.reloaded'));
      await connectOverHttp(s2.url, PASSCODE, entra.login);
      await until(() => rx.received.some((r) => r.path === '/serve2'));
    } finally {
      await s2.stop();
    }
  });
});
