/**
 * Connecting an account: how long a login may take, and the passcode that opens
 * it, as `broker init` sets it and the start page's form takes it. (The code flow
 * itself: broker.test.ts; wrong passcodes and lockout: lockout.test.ts, limits.test.ts.)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PASSCODE_MAX_LENGTH, PASSCODE_MIN_LENGTH } from '../src/broker/passcode.ts';
import { initCommand } from '../src/cli/init.ts';
import { processIo, type Io } from '../src/cli/io.ts';
import { readSettings } from '../src/config/settings.ts';
import type { BrokerError } from '../src/errors.ts';
import { AUTHID_IN_PAGE } from './support/authid.ts';
import { PUBLIC_URL, startHarness } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';
import { cookiesOf, loginForm } from './support/http.ts';

// Found by mutation testing.
describe('a login must finish within 10 minutes', () => {
  const h = useHarness();

  it('a callback 11 minutes after POST /login is refused as expired, and the code is never redeemed', async () => {
    h.clock.offsetMs = 0;
    const started = await h.app(new Request(`${PUBLIC_URL}/login`, loginForm()));
    expect(started.status).toBe(302);
    const cookie = cookiesOf(started).join('; ');
    const callback = await h.entra.login(started.headers.get('location')!, { username: 'gaps-slow-login' });
    h.entra.resetStats();

    h.clock.offsetMs = 11 * 60_000;
    const res = await h.app(new Request(callback, { headers: { cookie } }));
    h.clock.offsetMs = 0;
    expect(res.status).toBe(400);
    expect(res.headers.get('x-reason')).toMatch(/expired/);
    expect(AUTHID_IN_PAGE.test(await res.text())).toBe(false);
    expect(h.entra.stats().byGrant.authorization_code).toBe(0);
  });
});

// Found by review.
describe("init and the form agree on the passcode's length", () => {
  const initWith = async (passcode: string) => {
    const home = join(mkdtempSync(join(tmpdir(), 'broker-review-init-')), 'home');
    const io: Io = { ...processIo(), out: () => {}, err: () => {}, env: { BROKER_HOME: home, BROKER_CLIENT_SECRET: 'a-client-secret-value' }, isTTY: false };
    await initCommand({ nonInteractive: true, clientId: '00000000-0000-0000-0000-000000000001', passcode }, io);
    return home;
  };

  it(`a passcode of exactly ${PASSCODE_MAX_LENGTH} characters: init takes it and the start page's form accepts it`, async () => {
    // Varied characters, so that a form that cut it short could not match by accident.
    const longest = Array.from({ length: PASSCODE_MAX_LENGTH }, (_, i) => 'abcdefghij0123456789-_ '[i % 23]).join('');
    expect(longest.length).toBe(PASSCODE_MAX_LENGTH);
    const { passcodeHash } = readSettings(await initWith(longest));
    expect(passcodeHash).toBeTruthy();
    const hh = await startHarness({ config: { passcodeHash: passcodeHash! } });
    try {
      const res = await hh.app(new Request(`${PUBLIC_URL}/login`, loginForm({ passcode: longest })), { address: '192.0.2.5' });
      expect(res.status, res.headers.get('x-reason') ?? '').toBe(302);
      expect(res.headers.get('location')).toMatch(/\/oauth2\/v2\.0\/authorize\?/);
      // The same passcode one character short is wrong, as any other.
      const short = await hh.app(new Request(`${PUBLIC_URL}/login`, loginForm({ passcode: longest.slice(0, -1) })), { address: '192.0.2.6' });
      expect(short.status).toBe(403);
    } finally {
      await hh.close();
    }
  });

  it(`one character more (${PASSCODE_MAX_LENGTH + 1}) is refused by init, naming the range`, async () => {
    const err = await initWith('y'.repeat(PASSCODE_MAX_LENGTH + 1)).then(
      () => undefined,
      (e: unknown) => e as BrokerError,
    );
    expect(err?.code).toBe('usage');
    expect(err?.message).toBe(`The passcode must be ${PASSCODE_MIN_LENGTH} to ${PASSCODE_MAX_LENGTH} characters.`);
  });
});
