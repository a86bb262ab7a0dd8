/**
 * Hardening found by a security review, one `describe` per finding; each test
 * failed before its fix. (A rejected app secret answering 502 was kept: 5xx is
 * right for Duplicati's retries, and a negative cache would turn one transient
 * invalid_client into a minute of failures for every connection.)
 */
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSCODE_MAX_LENGTH, PASSCODE_MIN_LENGTH } from '../src/broker/passcode.ts';
import { initCommand } from '../src/cli/init.ts';
import { processIo, type Io } from '../src/cli/io.ts';
import { readSettings, validateHttpUrl } from '../src/config/settings.ts';
import type { BrokerError } from '../src/errors.ts';
import { Store } from '../src/store/store.ts';
import { PASSCODE, PUBLIC_URL, startHarness, type Harness } from './support/harness.ts';

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields),
});

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ config: { upstreamTimeoutMs: 1000, upstreamBudgetMs: 3000 } });
});
afterAll(async () => {
  await h?.close();
});

// ---------------------------------------------------------------------------
describe("a legacy fetch token only reaches the browser that Duplicati's page opened", () => {
  it("an attacker who planted ?token= in a link gets the owner's AuthID from /fetch without any of the login browser's cookies", async () => {
    // The attacker picks a token and registers it, claiming Duplicati's origin (anyone can, outside a browser).
    const token = 'attacker-chosen-token-0001';
    const registered = await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2&token=${token}`, { headers: { origin: 'http://localhost:8200' } }));
    expect(await registered.text()).toContain(`name="token" value="${token}"`);
    expect(registered.headers.get('set-cookie')).toMatch(/^broker_fetch=/);
    expect(await (await h.app(new Request(`${PUBLIC_URL}/fetch?token=${token}`))).json()).toEqual({ wait: 'Not ready' });

    // The owner follows the attacker's link to their own broker and connects as usual; the form
    // carries the token, but the owner's browser never got the fetch cookie that registered it.
    const page = await h.app(new Request(`${PUBLIC_URL}/?type=onedrivev2&token=${token}`));
    const ownerCookies = (page.headers.get('set-cookie') ?? '')
      .split(/,(?=\s*\w+=)/)
      .map((c) => c.split(';')[0]!.trim())
      .filter(Boolean);
    expect(ownerCookies).toEqual([]);
    const begun = await h.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: PASSCODE, token })));
    expect(begun.status).toBe(302);
    ownerCookies.push(begun.headers.get('set-cookie')!.split(';')[0]!);
    const callback = await h.entra.login(begun.headers.get('location')!);
    const done = await h.app(new Request(callback, { headers: { cookie: ownerCookies.join('; ') } }));
    expect(done.status).toBe(200);
    const authid = /id="authid"[^>]*>([^<]+)</.exec(await done.text())![1]!;

    // The attacker polls /fetch from their own machine: the token is still registered and empty.
    const stolen = await h.app(new Request(`${PUBLIC_URL}/fetch?token=${token}`));
    const body = await stolen.text();
    // (Compared without printing: a failure message must not show the AuthID.)
    expect(body.includes(authid), 'the AuthID reached /fetch').toBe(false);
    expect(JSON.parse(body)).toEqual({ wait: 'Not ready' });
  });
});

// ---------------------------------------------------------------------------
describe('a revoke during a Microsoft outage wins over the old token', () => {
  let outage: Harness;
  let failRefresh: { called: () => void; gate: Promise<void> } | undefined;

  beforeAll(async () => {
    outage = await startHarness({
      // One attempt only: the budget leaves no room for a retry.
      config: { upstreamTimeoutMs: 5000, upstreamBudgetMs: 600 },
      // The network: the real provider, except that a refresh can be made to fail with a 503 after a gate opens.
      fetch: async (input, init) => {
        const f = failRefresh;
        if (f && String(init?.body ?? '').includes('grant_type=refresh_token')) {
          f.called();
          await f.gate;
          return new Response(JSON.stringify({ error: 'temporarily_unavailable', error_codes: [90000] }), {
            status: 503,
            headers: { 'content-type': 'application/json' },
          });
        }
        return globalThis.fetch(input, init);
      },
    });
  });
  afterAll(async () => {
    await outage?.close();
  });

  it('`broker revoke` lands while the refresh waits for Microsoft; Microsoft then fails → the answer must be 410, not the old token', async () => {
    const { authid, keyid } = await outage.connect();

    // Two minutes of life left: a refresh is due, and the old token is still "worth serving" if Microsoft fails.
    outage.clock.offsetMs = 3600_000 - 120_000;
    let called!: () => void;
    const reached = new Promise<void>((r) => (called = r));
    let open!: () => void;
    failRefresh = { called, gate: new Promise<void>((r) => (open = r)) };
    const pending = outage.refresh(authid);
    await reached;

    // The owner revokes from the command line (another process, the same store file).
    const cli = Store.open(outage.dbPath);
    expect(cli.revoke(keyid, Date.now())).toBe(true);
    cli.close();
    open();

    const res = await pending;
    failRefresh = undefined;
    expect(res.status).toBe(410);
  });
});

// ---------------------------------------------------------------------------
describe('a revoked envelope is gone from broker.db and its WAL', () => {
  it('after `broker revoke`, no byte of the sealed envelope is left in the store files', async () => {
    const c = await h.connect();
    const envelope = h.store.get(c.keyid)!.sealed!;
    // Like `broker revoke <keyid>` while serve runs: a second connection to the same file.
    const cli = Store.open(h.dbPath);
    expect(cli.revoke(c.keyid, Date.now())).toBe(true);
    cli.close();
    const nonceAndMac = Buffer.from(envelope.subarray(1, 1 + 24 + 16));
    const found = [h.dbPath, `${h.dbPath}-wal`].filter((f) => existsSync(f) && readFileSync(f).includes(nonceAndMac));
    expect(found).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
describe('a cross-site form post cannot lock the owner out', () => {
  it("6 cross-site form posts from a page the owner visits do not stop the owner's own login from that browser", async () => {
    const address = '127.0.0.1'; // the owner's browser on the broker's machine (or through `ssh -L`)
    for (let i = 0; i < 6; i++) {
      // What <form method=post action="http://localhost:8080/login"> on any site sends: a simple request, no preflight.
      await h.app(
        new Request(`${PUBLIC_URL}/login`, {
          ...form({ id: 'onedrivev2', passcode: `csrf-guess-${i}` }),
          headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
        }),
        { address },
      );
    }
    const own = await h.app(
      new Request(`${PUBLIC_URL}/login`, {
        ...form({ id: 'onedrivev2', passcode: PASSCODE }),
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: PUBLIC_URL, 'sec-fetch-site': 'same-origin' },
      }),
      { address },
    );
    expect(own.status).toBe(302);
  });
});

// ---------------------------------------------------------------------------
describe('the app secret is never sent to a plain-http authority', () => {
  it('--authority http://login.microsoftonline.com is refused (http only for loopback test providers)', () => {
    expect(validateHttpUrl('http://login.microsoftonline.com', 'authority')).not.toBeNull();
    expect(validateHttpUrl('http://127.0.0.1:9999', 'authority')).toBeNull();
  });
});

// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
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
      const res = await hh.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: longest })), { address: '192.0.2.5' });
      expect(res.status, res.headers.get('x-reason') ?? '').toBe(302);
      expect(res.headers.get('location')).toMatch(/\/oauth2\/v2\.0\/authorize\?/);
      // The same passcode one character short is wrong, as any other.
      const short = await hh.app(new Request(`${PUBLIC_URL}/login`, form({ id: 'onedrivev2', passcode: longest.slice(0, -1) })), { address: '192.0.2.6' });
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
