/**
 * Seeds a broker store with many connections through the store's own API and
 * properly sealed envelopes (src/crypto), without logins:
 *
 *   bun bench/seed.ts <path/to/broker.db> <count>
 *
 * Each connection gets a fresh random AuthID (thrown away: nobody drives the
 * seeded connections), derived keys, and a realistic sealed grant of about 1.5 KB.
 *
 * Each Store.insert is its own transaction with synchronous=FULL (one fsync per
 * row), so rows go in batches through Store.insertMany: one transaction each.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { generateAuthId } from '../src/crypto/authid.ts';
import { deriveKeys, sealJson } from '../src/crypto/seal.ts';
import { loadSodium, type Sodium } from '../src/crypto/sodium.ts';
import type { SealedGrant } from '../src/broker/sealed-grant.ts';
import { SqliteStore } from '../src/store/store.ts';

/** A grant shaped like a real Microsoft one: ~1.5 KB of JSON once sealed. */
export function realisticGrant(now: number, i = 0): SealedGrant {
  return {
    v: 1,
    service: 'onedrivev2',
    // MSA refresh tokens are opaque strings of several hundred characters; access tokens ("EwB…") too.
    refreshToken: `M.C5${i % 10}_BAY.0.U.-${randomBytes(450).toString('base64url')}`,
    accessToken: `EwB${randomBytes(400).toString('base64url')}`,
    accessTokenExpiresAt: now + 3600_000,
    accessTokenLifetime: 3600,
    account: { tid: '9188040d-6c67-4c5b-b112-36a304b66dad', oid: randomUUID(), name: `Seeded User ${i}`, username: `seeded.user.${i}@outlook.com` },
    obtainedAt: now,
  };
}

export interface SeedResult {
  count: number;
  ms: number;
  perSecond: number;
  envelopeBytes: number;
}

export async function seedStore(dbPath: string, count: number, opts: { batch?: number; sodium?: Sodium } = {}): Promise<SeedResult> {
  const sodium = opts.sodium ?? (await loadSodium());
  const batch = opts.batch ?? 5000;
  const store = SqliteStore.open(dbPath);
  const t0 = performance.now();
  let envelopeBytes = 0;
  try {
    for (let done = 0; done < count; ) {
      const n = Math.min(batch, count - done);
      const now = Date.now();
      const rows = [];
      for (let i = 0; i < n; i++) {
        const { parsed } = generateAuthId((k) => sodium.randombytes_buf(k));
        const keys = deriveKeys(sodium, parsed);
        const sealed = sealJson(sodium, keys.sealKey, realisticGrant(now, done + i));
        envelopeBytes = sealed.length;
        // Spread creation over the past 80 days, as a long-lived broker would have.
        rows.push({ keyid: parsed.keyid, service: 'onedrivev2', checkTag: keys.checkTag, sealed, now: now - Math.floor(Math.random() * 80 * 86_400_000) });
      }
      await store.insertMany(rows);
      done += n;
    }
    // Leave a compact file behind, not a WAL as large as the table.
    store.checkpoint();
  } finally {
    await store.close();
  }
  const ms = performance.now() - t0;
  return { count, ms: Math.round(ms), perSecond: Math.round((count / ms) * 1000), envelopeBytes };
}

if (import.meta.main) {
  const [path, n] = process.argv.slice(2);
  if (!path || !n || !/^\d+$/.test(n)) {
    process.stderr.write('usage: bun bench/seed.ts <path/to/broker.db> <count>\n');
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(await seedStore(path, Number(n)))}\n`);
}
