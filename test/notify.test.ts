/**
 * Notifications (issue 14), in process: the payloads and formats, the notifier's
 * promises (once per cause, retried for an hour, bounded, never in a request's
 * way), HTTP targets against a local receiver, and the time-based checks with an
 * injected clock. The command target and the secret scan of everything delivered
 * spawn processes: test/notify-delivery.test.ts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DAY_MS } from '../src/broker/lifecycle.ts';
import { silentLogger } from '../src/broker/context.ts';
import { short } from '../src/broker/tokens.ts';
import { appRejected, type Cause, loginRequired, notification } from '../src/notify/events.ts';
import { detectFormat, render } from '../src/notify/formats.ts';
import { Notifier, RETRY_FOR_MS } from '../src/notify/notifier.ts';
import { dailyCheck } from '../src/notify/scheduler.ts';
import { appFingerprint, startNotifications } from '../src/notify/setup.ts';
import { NotifySink, OUTAGE_AFTER_MS } from '../src/notify/sink.ts';
import { commandLabel, httpTarget, type Target, urlLabel } from '../src/notify/targets.ts';
import { SqliteStore } from '../src/store/store.ts';
import { expireCachedToken } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';
import { startDeadTarget, startReceiver } from './support/receiver.ts';

const NOW = Date.parse('2026-11-30T12:00:00Z');
const note = (now = NOW) =>
  notification({ event: 'connection.login_required', severity: 'critical', keyid: 'bk1abcdefghijklmnop', service: 'onedrivev2', message: 'm', hint: 'h', now });
const cause = (key: string): Cause => ({ key, notification: note() });

/** A target that records and answers as told. */
function fakeTarget(answer: () => Promise<void> = async () => {}): Target & { got: unknown[] } {
  const got: unknown[] = [];
  return {
    label: 'fake',
    got,
    async send(n) {
      got.push(n);
      await answer();
    },
  };
}

/** A clock that `sleep` moves forward: an hour of retries takes no time. */
function fakeClock(start = NOW) {
  const c = { t: start, slept: [] as number[] };
  const sleep = async (ms: number) => {
    c.slept.push(ms);
    c.t += ms;
  };
  return { c, now: () => c.t, sleep };
}

describe('payloads and formats', () => {
  it('JSON has exactly the documented fields, the keyid shortened as in the logs', () => {
    const n = note();
    expect(Object.keys(JSON.parse(render(n, 'json').body))).toEqual(['event', 'severity', 'keyid', 'service', 'message', 'hint', 'time']);
    expect(n.keyid).toBe(short('bk1abcdefghijklmnop'));
    expect(n.time).toBe('2026-11-30T12:00:00.000Z');
  });

  it('detects ntfy, Slack and Discord from the URL; anything else takes --notify-format, else json', () => {
    expect(detectFormat('https://ntfy.sh/my-topic')).toBe('ntfy');
    expect(detectFormat('https://hooks.slack.com/services/T/B/x')).toBe('text');
    expect(detectFormat('https://discord.com/api/webhooks/1/x')).toBe('text');
    expect(detectFormat('https://example.org/hook')).toBe('json');
    // Logs name a target without what may be a password: a webhook's path, a URL's user, a command's arguments.
    expect(urlLabel('https://user:pw@hooks.slack.com/services/T/B/secret?x=1')).toBe('https://hooks.slack.com/…');
    expect(commandLabel('SMTP_PASS=hunter2 msmtp -a x owner@example.org')).toBe('command msmtp');
    expect(commandLabel('"$HOME/bin/notify me"')).toBe('command');
    expect(commandLabel('/usr/bin/mail -s x owner@example.org')).toBe('command mail');
    expect(detectFormat('https://ntfy.example.org/topic', 'ntfy')).toBe('ntfy');
    expect(detectFormat('https://ntfy.sh/topic', 'json')).toBe('ntfy');
    expect(detectFormat('https://ntfy.example.org/topic#ntfy', 'json')).toBe('ntfy');
  });

  it('ntfy: plain-text body with Title, Priority and Tags; text: {"text"} (and Discord\'s "content")', () => {
    const n = render(note(), 'ntfy');
    expect(n.body).toBe('m\n\nh');
    expect(n.headers).toMatchObject({ Title: 'broker: A connection needs a new sign-in', Priority: '5', Tags: 'rotating_light' });
    expect(JSON.parse(render(note(), 'text').body)).toEqual({ text: 'broker: A connection needs a new sign-in\nm h' });
    expect(Object.keys(JSON.parse(render(note(), 'text', 'https://discord.com/api/webhooks/1/x').body))).toEqual(['text', 'content']);
  });

  it("app.rejected's cause ignores what differs per answer; login_required is one per connection", () => {
    expect(appRejected('The app was rejected.', 'cid', 1).key).toBe(appRejected('The app was rejected.', 'cid', 2).key);
    expect(loginRequired('k1', 's', 'r', 'http://x', 1).key).not.toBe(loginRequired('k2', 's', 'r', 'http://x', 1).key);
    // A new secret rejected again is a new cause; the secret itself is not in the key.
    const app = (clientSecret: string) => appFingerprint({ clientId: 'cid', tenant: 'consumers', clientSecret });
    expect(appRejected('r', app('old-secret-value'), 1).key).not.toBe(appRejected('r', app('new-secret-value'), 1).key);
    expect(appRejected('r', app('old-secret-value'), 1).key).not.toContain('old-secret-value');
  });
});

describe('the notifier', () => {
  it('sends each cause once, also when the same cause comes again', async () => {
    const t = fakeTarget();
    const n = new Notifier({ targets: [t], now: () => NOW, log: silentLogger });
    for (let i = 0; i < 5; i++) n.send(cause('a'));
    n.send(cause('b'));
    await n.idle();
    expect(t.got).toHaveLength(2);
  });

  it('retries a failing target with growing pauses for an hour, then gives up; a later success counts as sent', async () => {
    const outcomes: string[] = [];
    const observe = (_: string, o: string) => outcomes.push(o);
    const dead = fakeTarget(async () => {
      throw new Error('HTTP 500');
    });
    const clock = fakeClock();
    const n = new Notifier({ targets: [dead], now: clock.now, sleep: clock.sleep, log: silentLogger, observe });
    n.send(cause('a'));
    await n.idle();
    expect(clock.c.slept.slice(0, 4)).toEqual([5_000, 15_000, 60_000, 120_000]);
    expect(clock.c.t - NOW).toBeLessThanOrEqual(RETRY_FOR_MS);
    expect(clock.c.t - NOW).toBeGreaterThan(RETRY_FOR_MS - 600_000);
    expect(outcomes.filter((o) => o === 'gave_up')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'retry')).toHaveLength(dead.got.length - 1);

    let fails = 2;
    const flaky = fakeTarget(async () => {
      if (fails-- > 0) throw new Error('HTTP 500');
    });
    const clock2 = fakeClock();
    const m = new Notifier({ targets: [flaky], now: clock2.now, sleep: clock2.sleep, log: silentLogger, observe });
    m.send(cause('a'));
    await m.idle();
    expect(flaky.got).toHaveLength(3);
    expect(outcomes.filter((o) => o === 'sent')).toHaveLength(1);
  });

  it('is bounded: with every slot held by a hanging target, more causes are dropped and counted, and send never waits', async () => {
    const outcomes: string[] = [];
    const hang = fakeTarget(() => new Promise(() => {}));
    const n = new Notifier({ targets: [hang], now: () => NOW, log: silentLogger, maxPending: 3, observe: (_, o) => outcomes.push(o) });
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) n.send(cause(`c${i}`));
    expect(performance.now() - t0).toBeLessThan(50);
    await Bun.sleep(5);
    expect(hang.got).toHaveLength(3);
    expect(outcomes.filter((o) => o === 'dropped')).toHaveLength(7);
  });

  it('once per cause across instances and restarts: the claim in the store lets one notifier send', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'broker-notify-')), 'broker.db');
    const a = SqliteStore.open(path);
    const b = SqliteStore.open(path);
    const t = fakeTarget();
    const mk = (s: SqliteStore) => new Notifier({ targets: [t], now: () => NOW, log: silentLogger, claim: (k, now) => s.claimNotification(k, now) });
    const [na, nb] = [mk(a), mk(b)];
    na.send(cause('same'));
    nb.send(cause('same'));
    await Promise.all([na.idle(), nb.idle()]);
    // A restarted instance: a new notifier, memory empty, the store remembers.
    const nc = mk(b);
    nc.send(cause('same'));
    await nc.idle();
    expect(t.got).toHaveLength(1);
    a.close();
    b.close();
  });
});

describe('targets', () => {
  const rx = startReceiver();
  afterAll(() => rx.close());

  it('HTTP: posts the body; a 500 is a failure to retry', async () => {
    await httpTarget(`${rx.url}/ok`, 'json', fetch).send(note());
    expect(JSON.parse(rx.received.at(-1)!.body).event).toBe('connection.login_required');
    await expect(httpTarget(`${rx.url}/fail`, 'json', fetch).send(note())).rejects.toThrow('HTTP 500');
  });

  it('HTTP: a target that hangs times out, one that closes the socket fails at once', async () => {
    const hang = await startDeadTarget('hang');
    const closing = await startDeadTarget('close');
    try {
      const t0 = performance.now();
      await expect(httpTarget(hang.url, 'json', fetch, 300).send(note())).rejects.toThrow();
      expect(performance.now() - t0).toBeLessThan(2000);
      await expect(httpTarget(closing.url, 'json', fetch).send(note())).rejects.toThrow();
    } finally {
      await hang.close();
      await closing.close();
    }
  });
});

describe('time-based checks (injected clock)', () => {
  const run = async (now: number, secretExpires: string | undefined, connections: Parameters<typeof dailyCheck>[0]['connections'], n: Notifier) =>
    dailyCheck({ notifier: n, now: () => now, apps: () => [{ id: 'microsoft', name: 'Microsoft', secretExpires }], connections });

  it('the app secret: 30, 7 and 1 days before and on the day, each once however often checked', async () => {
    const t = fakeTarget();
    const n = new Notifier({ targets: [t], now: () => NOW, log: silentLogger });
    const expires = '2027-01-31';
    const end = Date.parse(`${expires}T00:00:00Z`);
    for (let day = 40; day >= -3; day--) await run(end - day * DAY_MS + 3600_000, expires, () => [], n);
    await n.idle();
    const got = t.got as { message: string; severity: string }[];
    expect(got.map((g) => g.message)).toEqual([
      'The Microsoft app secret expires in 30 days, on 2027-01-31.',
      'The Microsoft app secret expires in 7 days, on 2027-01-31.',
      'The Microsoft app secret expires in 1 day, on 2027-01-31.',
      'The Microsoft app secret expires on 2027-01-31 (today, or already past): from then every Microsoft refresh fails.',
    ]);
    expect(got.map((g) => g.severity)).toEqual(['warning', 'warning', 'critical', 'critical']);
  });

  it("every provider's app secret on its own: the Google app's reminder names Google and its init command", async () => {
    const t = fakeTarget();
    const n = new Notifier({ targets: [t], now: () => NOW, log: silentLogger });
    const at = Date.parse('2027-03-01T00:00:00Z') - 7 * DAY_MS + 3600_000;
    const apps = () => [
      { id: 'microsoft', name: 'Microsoft', secretExpires: '2028-01-01' },
      { id: 'google', name: 'Google', secretExpires: '2027-03-01' },
    ];
    await dailyCheck({ notifier: n, now: () => at, apps, connections: () => [] });
    await n.idle();
    const got = t.got as { message: string; hint: string }[];
    expect(got.map((g) => g.message)).toEqual(['The Google app secret expires in 7 days, on 2027-03-01.']);
    expect(got[0]!.hint).toContain('broker init --provider google');
  });

  it("idle warnings follow each provider's limit: Box (60 days) after 30 unused, none for Dropbox (no limit)", async () => {
    const t = fakeTarget();
    const n = new Notifier({ targets: [t], now: () => NOW, log: silentLogger });
    const last = Date.parse('2026-09-01T08:00:00Z');
    const row = (keyid: string, service: string) => ({
      keyid,
      service,
      state: 'active' as const,
      version: 1,
      createdAt: last - DAY_MS,
      lastRefreshAt: last,
      lastUsedAt: null,
      stateChangedAt: null,
      stateReason: null,
    });
    const rows = [row('box-keyid', 'box.com'), row('dropbox-keyid', 'dropbox')];
    await run(last + 29 * DAY_MS, undefined, () => rows, n);
    await n.idle();
    expect(t.got).toHaveLength(0);
    await run(last + 31 * DAY_MS, undefined, () => rows, n);
    await run(last + 200 * DAY_MS, undefined, () => rows, n);
    await n.idle();
    const got = t.got as { keyid: string; message: string }[];
    expect(got.map((g) => g.keyid)).toEqual([short('box-keyid')]);
    expect(got[0]!.message).toContain('the provider ends it on 2026-10-31');
  });

  it('a connection unused for 60 days, with the date the 90-day limit ends it; active ones only, once per idle spell', async () => {
    const t = fakeTarget();
    const n = new Notifier({ targets: [t], now: () => NOW, log: silentLogger });
    const row = (keyid: string, state: 'active' | 'revoked', lastRefreshAt: number) => ({
      keyid,
      service: 'onedrivev2',
      state,
      version: 1,
      createdAt: lastRefreshAt - DAY_MS,
      lastRefreshAt,
      lastUsedAt: null,
      stateChangedAt: null,
      stateReason: null,
    });
    const last = Date.parse('2026-09-01T08:00:00Z');
    const rows = [row('idle-one-keyid', 'active', last), row('revoked-keyid', 'revoked', last), row('fresh-keyid', 'active', NOW - DAY_MS)];
    for (let d = 0; d < 5; d++) await run(last + (59 + d) * DAY_MS, undefined, () => rows, n);
    await n.idle();
    const got = t.got as { keyid: string; message: string }[];
    expect(got).toHaveLength(1);
    expect(got[0]!.keyid).toBe(short('idle-one-keyid'));
    expect(got[0]!.message).toContain('not used for 60 days: the provider ends it on 2026-11-30');
  });

  it('upstream.outage after 10 minutes of transient failures with no success, upstream.recovered on the next success', async () => {
    const t = fakeTarget();
    const clock = { t: NOW };
    const n = new Notifier({ targets: [t], now: () => clock.t, log: silentLogger });
    const sink = new NotifySink({ notifier: n, now: () => clock.t, settings: () => ({ publicUrl: 'http://x', app: () => 'c', notifyAll: false }) });
    const call = (ok: boolean) => sink.report({ type: 'upstream.call', provider: 'microsoft', outcome: ok ? 'ok' : 'upstream_timeout' });
    /** A failed call a minute, `minutes` times. */
    const failing = (minutes: number) => {
      for (let m = 0; m < minutes; m++) {
        call(false);
        clock.t += 60_000;
      }
    };
    failing(9);
    call(true); // a success in between starts the count again
    failing(OUTAGE_AFTER_MS / 60_000 + 1);
    failing(5);
    call(true);
    call(true);
    await n.idle();
    expect((t.got as { event: string }[]).map((g) => g.event)).toEqual(['upstream.outage', 'upstream.recovered']);
  });
});

describe('a dead target is never in a request’s way', () => {
  const h = useHarness();
  const rx = startReceiver();
  afterAll(() => rx.close());

  it('hanging, 500 and closing targets: the request that causes the event, and cache hits meanwhile, answer at once', async () => {
    const hang = await startDeadTarget('hang');
    const closing = await startDeadTarget('close');
    const notifications = startNotifications(
      h.broker,
      { notifyUrls: [hang.url, `${rx.url}/fail`, closing.url], notifyAll: true },
      { fetch, now: h.broker.ctx.now, log: silentLogger },
    );
    try {
      const ok = await h.connect();
      const doomed = await h.connect();
      expireCachedToken(h);
      expect((await h.refresh(ok.authid)).status).toBe(200);
      h.entra.failNext(1, { status: 400, body: { error: 'invalid_grant', error_codes: [70008] } });
      let t0 = performance.now();
      expect((await h.refresh(doomed.authid)).status).toBe(400);
      expect(performance.now() - t0).toBeLessThan(1000);
      // Deliveries are under way (one target never answers within its 10 s); cache hits do not wait for them.
      t0 = performance.now();
      for (let i = 0; i < 200; i++) expect((await h.refresh(ok.authid)).status).toBe(200);
      expect(performance.now() - t0).toBeLessThan(2000);
      // Each of the three events reached the failing receiver, and waits there for its retry.
      for (let i = 0; i < 100 && rx.received.filter((r) => r.path === '/fail').length < 3; i++) await Bun.sleep(20);
      expect(
        rx.received
          .filter((r) => r.path === '/fail')
          .map((r) => JSON.parse(r.body).event)
          .sort(),
      ).toEqual(['connection.created', 'connection.created', 'connection.login_required']);
    } finally {
      notifications.stop();
      await hang.close();
      await closing.close();
    }
  });
});
