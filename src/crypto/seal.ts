import { BrokerError } from '../errors.ts';
import type { AuthId } from './authid.ts';
import { scratchOf } from './heap.ts';
import type { Sodium } from './sodium.ts';

/**
 * Keys and sealed envelopes (docs/format.md).
 *
 *   sealKey  = BLAKE2b-256(key = secret, msg = "broker/v1/seal"  0x00 keyid)
 *   checkTag = BLAKE2b-256(key = secret, msg = "broker/v1/check" 0x00 keyid)
 *   envelope = 0x01 || nonce[24] || crypto_secretbox(plaintext, nonce, sealKey)
 *
 * The secret has 280 random bits, so a fast keyed hash is enough; a slow KDF
 * would only slow every refresh. The check tag lets the broker reject a wrong
 * secret, in constant time, without opening a box and for connections whose box
 * is gone (revoked); it reveals nothing that a 280-bit search could use.
 */
export const ENVELOPE_VERSION = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
// The domain messages' fixed part, encoded once; the keyid follows it.
const SEAL_DOMAIN = encoder.encode('broker/v1/seal\0');
const CHECK_DOMAIN = encoder.encode('broker/v1/check\0');
const INVALID = 'Unknown AuthID or wrong secret.';

export interface DerivedKeys {
  readonly sealKey: Uint8Array;
  readonly checkTag: Uint8Array;
}

/** Keyed BLAKE2b-256 (crypto_generichash) of the domain message under the secret. */
function keyedHash(sodium: Sodium, domain: Uint8Array, id: AuthId): Uint8Array {
  return scratchOf(sodium).keyedHash(id.secret, domain, id.keyid);
}

/** The seal key alone (what opening or sealing needs; authentication needs only the check tag). */
export function deriveSealKey(sodium: Sodium, id: AuthId): Uint8Array {
  return keyedHash(sodium, SEAL_DOMAIN, id);
}

export function deriveKeys(sodium: Sodium, id: AuthId): DerivedKeys {
  let sealKey: Uint8Array | undefined;
  return {
    // A cache hit only needs the check tag; the seal key is derived when a box is opened or sealed.
    get sealKey() {
      return (sealKey ??= deriveSealKey(sodium, id));
    },
    checkTag: keyedHash(sodium, CHECK_DOMAIN, id),
  };
}

export function checkTagMatches(sodium: Sodium, a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.memcmp(a, b);
}

export function seal(sodium: Sodium, key: Uint8Array, plaintext: Uint8Array, nonce?: Uint8Array): Uint8Array {
  return scratchOf(sodium).seal(ENVELOPE_VERSION, key, plaintext, nonce);
}

/** What `use` makes of the plaintext (a view into libsodium's heap, zeroed after). Throws BrokerError('invalid_authid') for any failure: a caller must not learn which check failed. */
function openInHeap<T>(sodium: Sodium, key: Uint8Array, envelope: Uint8Array, use: (plaintext: Uint8Array) => T): T {
  const result = envelope[0] === ENVELOPE_VERSION ? scratchOf(sodium).open(key, envelope, use) : null;
  if (result === null) throw new BrokerError('invalid_authid', INVALID);
  return result;
}

/** Throws BrokerError('invalid_authid') for any failure: a caller must not learn which check failed. */
export function open(sodium: Sodium, key: Uint8Array, envelope: Uint8Array): Uint8Array {
  return openInHeap(sodium, key, envelope, (p) => p.slice());
}

export function sealJson(sodium: Sodium, key: Uint8Array, value: unknown, nonce?: Uint8Array): Uint8Array {
  return scratchOf(sodium).seal(ENVELOPE_VERSION, key, JSON.stringify(value), nonce);
}

export function openJson<T>(sodium: Sodium, key: Uint8Array, envelope: Uint8Array): T {
  return JSON.parse(openInHeap(sodium, key, envelope, (p) => decoder.decode(p))) as T;
}
