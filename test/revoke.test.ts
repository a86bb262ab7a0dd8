/**
 * Revoking a connection against what is in flight and what is on disk: a revoke
 * that lands while a refresh waits for Microsoft wins whatever Microsoft answers,
 * and nothing of the sealed envelope is left in the store files. (Revoke over
 * HTTP and its answers: broker.test.ts.) Each test here once failed against a
 * mutant of src/ or before a fix found by review.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/store/store.ts';
import { expireCachedToken } from './support/harness.ts';
import { useHarness } from './support/hooks.ts';

/** `broker revoke <keyid>` from another process: a second connection to the same store file. */
async function revokeFromCli(dbPath: string, keyid: string): Promise<boolean> {
  const cli = SqliteStore.open(dbPath);
  try {
    return await cli.revoke(keyid, Date.now());
  } finally {
    await cli.close();
  }
}

// Found by mutation testing.
describe('a revoke that lands while a refresh is at Microsoft (Microsoft then answers fine)', () => {
  // One attempt per refresh (no retries within the budget).
  const h = useHarness({ config: { upstreamTimeoutMs: 1000, upstreamBudgetMs: 600 } });

  it('the refresh answers 410 and the new access token is never handed out', async () => {
    const { authid, keyid } = await h.connect({ username: 'gaps-revoke-midflight' });
    expireCachedToken(h);
    h.entra.resetStats();
    h.entra.setTokenDelay(400);
    try {
      const pending = h.refresh(authid);
      // Wait until the refresh request has reached the provider (it is held there for 400 ms).
      for (let i = 0; i < 200 && h.entra.stats().tokenRequests === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(h.entra.stats().tokenRequests).toBe(1);
      expect(await revokeFromCli(h.dbPath, keyid)).toBe(true);

      const res = await pending;
      expect(res.status).toBe(410);
      expect(((await res.json()) as { error: string }).error).toBe('revoked');
    } finally {
      h.entra.setTokenDelay(0);
    }
    // And nothing was cached for later either.
    const again = await h.refresh(authid);
    expect(again.status).toBe(410);
  });
});

// Found by review.
describe('a revoke during a Microsoft outage wins over the old token', () => {
  let failRefresh: { called: () => void; gate: Promise<void> } | undefined;
  const outage = useHarness({
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
    expect(await revokeFromCli(outage.dbPath, keyid)).toBe(true);
    open();

    const res = await pending;
    failRefresh = undefined;
    expect(res.status).toBe(410);
  });
});

// Found by review.
describe('a revoked envelope is gone from broker.db and its WAL', () => {
  const h = useHarness();

  it('after `broker revoke`, no byte of the sealed envelope is left in the store files', async () => {
    const c = await h.connect();
    const envelope = (await h.store.get(c.keyid))!.sealed!;
    // Like `broker revoke <keyid>` while serve runs: a second connection to the same file.
    expect(await revokeFromCli(h.dbPath, c.keyid)).toBe(true);
    const nonceAndMac = Buffer.from(envelope.subarray(1, 1 + 24 + 16));
    const found = [h.dbPath, `${h.dbPath}-wal`].filter((f) => existsSync(f) && readFileSync(f).includes(nonceAndMac));
    expect(found).toEqual([]);
  });
});
