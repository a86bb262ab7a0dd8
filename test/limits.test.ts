/**
 * The numbers behind the limits, pinned with an injected clock: how long a
 * client stays locked out after too many wrong AuthIDs or passcodes, how long
 * one refresh may wait for Microsoft, and (end to end) that a client cannot
 * escape the AuthID limit by sending X-Forwarded-For to a broker that does not
 * sit behind a proxy.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, tokenClient, UPSTREAM_BUDGET_MS, UPSTREAM_TIMEOUT_MS, type BrokerContext } from '../src/broker/context.ts';
import { hashPasscode, PasscodeGuard } from '../src/broker/passcode.ts';
import type { SealedGrant } from '../src/broker/sealed-grant.ts';
import { TokenService } from '../src/broker/tokens.ts';
import { generateAuthId } from '../src/crypto/authid.ts';
import { deriveKeys, sealJson } from '../src/crypto/seal.ts';
import { loadSodium } from '../src/crypto/sodium.ts';
import { BrokerError } from '../src/errors.ts';
import { findService } from '../src/oauth/services.ts';
import type { Fetch } from '../src/oauth/token-endpoint.ts';
import { SqliteStore } from '../src/store/store.ts';
import { LOOPBACK_CALLBACK, configuredHome, serve, type Served } from './support/binary.ts';
import { fakeAuthid } from './support/authid.ts';
import { useEntra } from './support/hooks.ts';
import { PASSCODE } from './support/passcode.ts';

const MINUTE = 60_000;
const T0 = Date.UTC(2026, 0, 1);

/** Duplicati gives one request to its OAuth URL 25 s before it gives up and retries. */
const DUPLICATI_REQUEST_TIMEOUT_MS = 25_000;

async function context(over: { now: () => number; fetch?: Fetch }): Promise<BrokerContext> {
  const store = SqliteStore.open(join(mkdtempSync(join(tmpdir(), 'broker-limits-')), 'broker.db'));
  return {
    config: {
      clientId: '00000000-0000-0000-0000-000000000001',
      clientSecret: 'limits-client-secret',
      tenant: 'consumers',
      authority: 'http://127.0.0.1:9',
      publicUrl: 'http://broker.test',
      passcodeHash: '',
      allowedOrigins: [],
      // No upstreamTimeoutMs / upstreamBudgetMs: the defaults are what is tested.
    },
    store,
    sodium: await loadSodium(),
    fetch: over.fetch ?? (() => Promise.reject(new Error('no network in this test'))),
    now: over.now,
    log: silentLogger,
  };
}

async function codeOfAsync(p: Promise<unknown>): Promise<{ code: string; retryAfter?: number }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof BrokerError) return e.options.retryAfter === undefined ? { code: e.code } : { code: e.code, retryAfter: e.options.retryAfter };
    throw e;
  }
  return { code: 'accepted' };
}

// ---------------------------------------------------------------------------
describe('wrong AuthIDs: 20 per client address, then locked out for the rest of 5 minutes', () => {
  it('still refused 1 s before the 5 minutes are over, free again at 5 minutes; other addresses unaffected', async () => {
    let t = T0;
    const ctx = await context({ now: () => t });
    const tokens = new TokenService(ctx);
    const unknown = generateAuthId((n) => ctx.sodium.randombytes_buf(n)).authid;
    const attacker = '198.51.100.20';
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) seen.push((await codeOfAsync(tokens.authenticate(unknown, attacker))).code);
    // 19 wrong answers, then the 20th failure locks the address.
    expect(seen).toEqual([...Array(19).fill('invalid_authid'), 'rate_limited']);
    const locked = await codeOfAsync(tokens.authenticate(unknown, attacker));
    expect(locked.code).toBe('rate_limited');
    expect(locked.retryAfter).toBe(5 * 60);

    t = T0 + 5 * MINUTE - 1000;
    const late = await codeOfAsync(tokens.authenticate(unknown, attacker));
    expect(late).toEqual({ code: 'rate_limited', retryAfter: 1 });
    expect((await codeOfAsync(tokens.authenticate(unknown, '198.51.100.21'))).code).toBe('invalid_authid');

    t = T0 + 5 * MINUTE;
    expect((await codeOfAsync(tokens.authenticate(unknown, attacker))).code).toBe('invalid_authid');
    await ctx.store.close();
  });
});

// ---------------------------------------------------------------------------
describe('wrong passcodes: 5 per client address, then locked out for the rest of 15 minutes', () => {
  it('still refused 1 s before the 15 minutes are over (even the right passcode), free again at 15 minutes', async () => {
    let t = T0;
    const hash = await hashPasscode('the-right-passcode');
    const guard = new PasscodeGuard(
      () => hash,
      () => t,
    );
    const client = '203.0.113.50';
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) seen.push((await codeOfAsync(guard.verify(`wrong-passcode-${i}`, client))).code);
    expect(seen).toEqual(Array(5).fill('passcode_invalid'));
    const locked = await codeOfAsync(guard.verify('wrong-passcode-5', client));
    expect(locked.code).toBe('rate_limited');
    expect(locked.retryAfter).toBe(15 * 60);

    t = T0 + 15 * MINUTE - 1000;
    expect(await codeOfAsync(guard.verify('the-right-passcode', client))).toEqual({ code: 'rate_limited', retryAfter: 1 });
    // Another address is not locked out by this one's five failures.
    expect((await codeOfAsync(guard.verify('the-right-passcode', '203.0.113.51'))).code).toBe('accepted');

    t = T0 + 15 * MINUTE;
    expect((await codeOfAsync(guard.verify('wrong-passcode-6', client))).code).toBe('passcode_invalid');
    expect((await codeOfAsync(guard.verify('the-right-passcode', client))).code).toBe('accepted');
  });
});

// ---------------------------------------------------------------------------
describe('how long a refresh waits for Microsoft, by default', () => {
  it("one call at most 10 s, all attempts of a refresh at most 20 s: below Duplicati's 25 s per request", async () => {
    expect(UPSTREAM_TIMEOUT_MS).toBeLessThanOrEqual(10_000);
    expect(UPSTREAM_BUDGET_MS).toBeLessThanOrEqual(20_000);
    const ctx = await context({ now: () => T0 });
    const client = tokenClient(ctx, findService('onedrivev2')!);
    expect(client.timeoutMs).toBe(UPSTREAM_TIMEOUT_MS);
    expect(client.timeoutMs).toBeLessThanOrEqual(10_000);
    expect(client.headersTimeoutMs!).toBeLessThanOrEqual(client.timeoutMs);
    // Within a refresh, a call never gets more than what is left of the budget.
    expect(tokenClient(ctx, findService('onedrivev2')!, 1500).timeoutMs).toBe(1500);
    await ctx.store.close();
  });

  it("a Microsoft that fails slowly: the refresh gives up (502) before Duplicati's 25 s, on the injected clock", async () => {
    let t = T0;
    let calls = 0;
    // Each call takes 6 s of the clock (shorter than any per-call limit it may get), then fails transiently.
    const slowFailure: Fetch = async () => {
      calls++;
      t += 6000;
      throw new TypeError('connection reset by peer');
    };
    const ctx = await context({ now: () => t, fetch: slowFailure });
    const tokens = new TokenService(ctx, async (ms) => {
      t += ms;
    });
    const { authid, parsed } = generateAuthId((n) => ctx.sodium.randombytes_buf(n));
    const keys = deriveKeys(ctx.sodium, parsed);
    const grant: SealedGrant = {
      v: 1,
      service: 'onedrivev2',
      refreshToken: 'limits-refresh-token',
      accessToken: 'limits-access-token',
      // Expired: nothing worth serving while Microsoft fails.
      accessTokenExpiresAt: T0 - 1000,
      accessTokenLifetime: 3600,
      account: { tid: 't', oid: 'o' },
      obtainedAt: T0 - 3600_000,
    };
    await ctx.store.insert({
      keyid: parsed.keyid,
      service: 'onedrivev2',
      checkTag: keys.checkTag,
      sealed: sealJson(ctx.sodium, keys.sealKey, grant),
      now: T0 - 3600_000,
    });

    const result = await codeOfAsync(tokens.getAccessToken(authid, '192.0.2.1'));
    const spent = t - T0;
    expect(result.code).toBe('upstream_error');
    expect(calls, `spent ${spent} ms of the clock`).toBeGreaterThanOrEqual(2); // it did retry within the budget
    expect(spent, `${calls} calls`).toBeLessThan(DUPLICATI_REQUEST_TIMEOUT_MS);
    await ctx.store.close();
  });
});

// ---------------------------------------------------------------------------
describe('X-Forwarded-For and the AuthID limit (binary)', () => {
  const entra = useEntra({ acceptRedirectUri: LOOPBACK_CALLBACK });
  let home: string;
  let served: Served | undefined;
  beforeAll(async () => {
    home = (await configuredHome(entra, PASSCODE)).home;
  });
  afterAll(async () => {
    await served?.stop('SIGKILL');
  });

  const unknown = fakeAuthid();
  async function wrongAuthIds(url: string, n: number): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${url}/refresh`, { headers: { 'x-authid': unknown, 'x-forwarded-for': `198.51.100.${i + 1}` } });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    return statuses;
  }

  it('without --trust-proxy, a spoofed X-Forwarded-For on every request does not escape the limit', async () => {
    served = await serve(home);
    let statuses: number[];
    try {
      statuses = await wrongAuthIds(served.url, 22);
    } finally {
      expect(await served.stop()).toBe(0);
      served = undefined;
    }
    expect(statuses.slice(0, 19)).toEqual(Array(19).fill(401));
    expect(statuses.slice(19)).toEqual([429, 429, 429]);
  });

  it('with --trust-proxy (a proxy on this machine), each forwarded address is counted on its own', async () => {
    served = await serve(home, {}, ['--trust-proxy']);
    let statuses: number[];
    try {
      statuses = await wrongAuthIds(served.url, 22);
    } finally {
      expect(await served.stop()).toBe(0);
      served = undefined;
    }
    expect(statuses).toEqual(Array(22).fill(401));
  });
});
