import { describe, expect, it } from 'vitest';
import { generateAuthId } from '../src/crypto/authid.ts';
import { deriveKeys, open, openJson, seal, sealJson } from '../src/crypto/seal.ts';
import { loadSodium } from '../src/crypto/sodium.ts';
import { BrokerError } from '../src/errors.ts';

const sodium = await loadSodium();
const { parsed } = generateAuthId((n) => sodium.randombytes_buf(n));
const key = deriveKeys(sodium, parsed).sealKey;
// Lone surrogates become U+FFFD, as TextEncoder.encode makes them.
const record = { refreshToken: 'rt-1', name: 'Zoë ✓ 😀 \ud800', n: 1 };

// seal.ts calls libsodium's exports on a scratch area in its heap; these pin that to what the wrappers compute.
describe('seal and open on libsodium’s heap', () => {
  it('seals the same box as crypto_secretbox_easy of the JSON’s UTF-8, under a fresh nonce each time', () => {
    const a = sealJson(sodium, key, record);
    const b = sealJson(sodium, key, record);
    expect(a[0]).toBe(1);
    expect(Buffer.from(a.subarray(1, 25)).equals(Buffer.from(b.subarray(1, 25)))).toBe(false);
    const bytes = new TextEncoder().encode(JSON.stringify(record));
    expect(Buffer.from(a.subarray(25)).equals(Buffer.from(sodium.crypto_secretbox_easy(bytes, a.subarray(1, 25), key)))).toBe(true);
    expect(openJson(sodium, key, a)).toEqual(JSON.parse(JSON.stringify(record)));
  });

  it('keeps working when a record outgrows the area and libsodium’s memory grows', () => {
    const big = { token: 'x'.repeat(2_000_000) };
    expect(openJson<typeof big>(sodium, key, sealJson(sodium, key, big)).token.length).toBe(2_000_000);
    for (let i = 0; i < 50; i++) sodium.crypto_secretbox_easy(new Uint8Array(200_000), new Uint8Array(24), key);
    expect(open(sodium, key, seal(sodium, key, new Uint8Array([1, 2, 3])))).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('refuses a tampered box or a wrong key with the one generic error', () => {
    const env = sealJson(sodium, key, record);
    const tampered = env.slice();
    tampered[30]! ^= 1;
    for (const [k, e] of [
      [key, tampered],
      [key.subarray(1), env],
      [deriveKeys(sodium, generateAuthId((n) => sodium.randombytes_buf(n)).parsed).sealKey, env],
    ] as const) {
      expect(() => openJson(sodium, k, e)).toThrow(BrokerError);
    }
  });

  it('leaves neither the plaintext nor the AuthID’s secret in libsodium’s memory after a seal, an open or a key derivation', () => {
    const heap = () => Buffer.from((sodium as unknown as { libsodium: { HEAPU8: Uint8Array } }).libsodium.HEAPU8.buffer);
    // Random bytes from outside libsodium: the wrappers' own calls (randombytes_buf) leave copies of what they touch.
    const own = generateAuthId((n) => crypto.getRandomValues(new Uint8Array(n))).parsed;
    const keys = deriveKeys(sodium, own);
    expect(keys.sealKey.length).toBe(32);
    expect(heap().indexOf(Buffer.from(own.secret))).toBe(-1);
    // A key that no BLAKE2b made, so that any copy of it in the heap is the area's.
    const boxKey = crypto.getRandomValues(new Uint8Array(32));
    const secret = `refresh-token-${'q'.repeat(40)}-${Date.now()}`;
    const env = sealJson(sodium, boxKey, { refreshToken: secret });
    expect([heap().indexOf(secret), heap().indexOf(Buffer.from(boxKey))]).toEqual([-1, -1]);
    expect(openJson<{ refreshToken: string }>(sodium, boxKey, env).refreshToken).toBe(secret);
    expect([heap().indexOf(secret), heap().indexOf(Buffer.from(boxKey))]).toEqual([-1, -1]);
    expect(open(sodium, boxKey, env).length).toBeGreaterThan(secret.length);
    expect([heap().indexOf(secret), heap().indexOf(Buffer.from(boxKey))]).toEqual([-1, -1]);
    // libsodium's BLAKE2b leaves its last output on its own stack (so it did under the wrappers too): out of our reach.
  });
});
