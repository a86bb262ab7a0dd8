/**
 * Notifications delivered to a local command (the event on stdin and in
 * BROKER_EVENT_* variables, an environment built from nothing, a timeout), and
 * end to end: real connects and refreshes against the local provider, every
 * delivered body, header, command input and environment scanned for secrets.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/broker/context.ts';
import { short } from '../src/broker/tokens.ts';
import { Metrics } from '../src/metrics.ts';
import { notification } from '../src/notify/events.ts';
import { startNotifications } from '../src/notify/setup.ts';
import { commandTarget, httpTarget } from '../src/notify/targets.ts';
import { expireCachedToken } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';
import { startReceiver } from './support/receiver.ts';

const NOW = Date.parse('2026-11-30T12:00:00Z');
const note = (now = NOW) =>
  notification({ event: 'connection.login_required', severity: 'critical', keyid: 'bk1abcdefghijklmnop', service: 'onedrivev2', message: 'm', hint: 'h', now });

describe('the command target', () => {
  it("the event as JSON on stdin and BROKER_EVENT_* variables, in an environment without the broker's own", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'broker-notify-cmd-'));
    const base = { PATH: process.env.PATH, HOME: '/home/x', BROKER_CLIENT_SECRET: 'must-not-pass', CREDENTIALS_DIRECTORY: '/run/x' };
    await commandTarget(`cat > ${dir}/stdin.json; env > ${dir}/env.txt`, 5000, base).send(note());
    expect(JSON.parse(readFileSync(join(dir, 'stdin.json'), 'utf8'))).toEqual(note());
    const env = readFileSync(join(dir, 'env.txt'), 'utf8');
    expect(env).toContain('BROKER_EVENT=connection.login_required');
    expect(env).toContain(`BROKER_EVENT_KEYID=${short('bk1abcdefghijklmnop')}`);
    expect(env).not.toContain('must-not-pass');
    expect(env).not.toContain('CREDENTIALS_DIRECTORY');
  });

  it('a failing one is an error with its last stderr line; a hanging one is killed at the timeout', async () => {
    await expect(commandTarget('echo nope >&2; exit 3').send(note())).rejects.toThrow('exit 3: nope');
    const t0 = performance.now();
    await expect(commandTarget('sleep 10', 300).send(note())).rejects.toThrow('timed out');
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});

describe('end to end: every delivered byte is scanned for secrets', () => {
  const h = useHarness();
  const rx = startReceiver();
  const dir = mkdtempSync(join(tmpdir(), 'broker-notify-e2e-'));
  afterAll(() => rx.close());

  it('connects, refreshes, fails sign-in, rejects the app, revokes: the owner hears each once and no secret leaves', async () => {
    const metrics = new Metrics(h.store);
    h.broker.ctx.observer = metrics;
    const command = `n=$(date +%s%N); cat > ${dir}/stdin-$n.json; env > ${dir}/env-$n.txt`;
    const notifications = startNotifications(
      h.broker,
      { notifyUrls: [`${rx.url}/json`, `${rx.url}/ntfy`, `${rx.url}/text`], notifyCommand: command, notifyAll: true },
      { fetch, now: h.broker.ctx.now, log: silentLogger },
    );
    // Each URL in its own format: the same events three ways.
    notifications.notifier.setTargets([
      httpTarget(`${rx.url}/json`, 'json', fetch),
      httpTarget(`${rx.url}/ntfy`, 'ntfy', fetch),
      httpTarget(`${rx.url}/text`, 'text', fetch),
      commandTarget(command, 5000, { ...process.env, BROKER_CLIENT_SECRET: h.entra.clientSecret }),
    ]);
    try {
      const secrets: string[] = [h.entra.clientSecret, PASSCODE];
      const a = await h.connect();
      const b = await h.connect();
      secrets.push(a.authid, b.authid, a.authid.split(':')[1]!, b.authid.split(':')[1]!);
      expect((await h.refresh(a.authid)).status).toBe(200);
      // A sign-in Microsoft demands, twice: one notification.
      expireCachedToken(h);
      h.entra.failNext(1, { status: 400, body: { error: 'invalid_grant', error_codes: [70008], error_description: 'AADSTS70008: expired' } });
      expect((await h.refresh(a.authid)).status).toBe(400);
      expect((await h.refresh(a.authid)).status).toBe(400);
      // The app rejected, on three requests: one notification.
      for (let i = 0; i < 3; i++) {
        h.entra.failNext(1, {
          status: 401,
          body: { error: 'invalid_client', error_codes: [7000222], error_description: 'AADSTS7000222: expired', trace_id: `t${i}` },
        });
        expect((await h.refresh(b.authid)).status).toBeGreaterThanOrEqual(400);
      }
      expect((await h.app(new Request('http://broker.test/revoke', { method: 'POST', headers: { 'x-authid': b.authid } }))).status).toBeLessThan(300);
      await notifications.notifier.idle();
      const issued = h.entra.issued();
      secrets.push(...issued.accessTokens, ...issued.refreshTokens, ...issued.idTokens);
      expect(issued.refreshTokens.length).toBeGreaterThan(0);

      const bodies = rx.received.filter((r) => r.path === '/json').map((r) => JSON.parse(r.body));
      // The provider's reason, in the broker's words.
      expect(bodies.find((x) => x.event === 'connection.login_required').message).toMatch(/needs a new sign-in.*the grant was revoked or has expired/);
      const json = bodies.map((x) => x.event);
      expect(json.sort()).toEqual(['app.rejected', 'connection.created', 'connection.created', 'connection.login_required', 'connection.revoked']);
      expect(rx.received.filter((r) => r.path === '/ntfy')).toHaveLength(5);
      expect(rx.received.filter((r) => r.path === '/text')).toHaveLength(5);
      const files = readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8'));
      expect(files).toHaveLength(10);

      const delivered = [...rx.received.map((r) => `${JSON.stringify(r.headers)}\n${r.body}`), ...files, command];
      for (const text of delivered) for (const s of secrets) expect(text.includes(s), `a secret in: ${text.slice(0, 200)}`).toBe(false);
      // Full keyids never: only their short form.
      for (const text of delivered) for (const k of [a.keyid, b.keyid]) expect(text.includes(k)).toBe(false);

      expect(await (await metrics.render()).text()).toMatch(/broker_notifications_total\{event="app.rejected",outcome="sent"\} 4/);
    } finally {
      notifications.stop();
    }
  });
});
