import { BrokerError } from '../errors.ts';
import type { AuthId } from './authid.ts';
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
const SEAL_DOMAIN = 'broker/v1/seal';
const CHECK_DOMAIN = 'broker/v1/check';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface DerivedKeys {
  readonly sealKey: Uint8Array;
  readonly checkTag: Uint8Array;
}

function domainMessage(domain: string, keyid: string): Uint8Array {
  return encoder.encode(`${domain}\0${keyid}`);
}

/** Keyed BLAKE2b-256 (crypto_generichash) of the domain message under the secret. */
function keyedHash(sodium: Sodium, domain: string, id: AuthId): Uint8Array {
  const message = domainMessage(domain, id.keyid);
  return sodium.crypto_generichash(32, message, id.secret);
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
  // Web Crypto's CSPRNG directly: libsodium-wrappers' randombytes_buf goes through its wasm glue and costs ~15% of a seal+open.
  const n = nonce ?? crypto.getRandomValues(new Uint8Array(sodium.crypto_secretbox_NONCEBYTES));
  const box = sodium.crypto_secretbox_easy(plaintext, n, key);
  const out = new Uint8Array(1 + n.length + box.length);
  out[0] = ENVELOPE_VERSION;
  out.set(n, 1);
  out.set(box, 1 + n.length);
  return out;
}

/** Throws BrokerError('invalid_authid') for any failure: a caller must not learn which check failed. */
export function open(sodium: Sodium, key: Uint8Array, envelope: Uint8Array): Uint8Array {
  const nonceBytes = sodium.crypto_secretbox_NONCEBYTES;
  if (envelope.length < 1 + nonceBytes + sodium.crypto_secretbox_MACBYTES || envelope[0] !== ENVELOPE_VERSION) {
    throw new BrokerError('invalid_authid', 'Unknown AuthID or wrong secret.');
  }
  try {
    return sodium.crypto_secretbox_open_easy(envelope.subarray(1 + nonceBytes), envelope.subarray(1, 1 + nonceBytes), key);
  } catch {
    throw new BrokerError('invalid_authid', 'Unknown AuthID or wrong secret.');
  }
}

export function sealJson(sodium: Sodium, key: Uint8Array, value: unknown, nonce?: Uint8Array): Uint8Array {
  return seal(sodium, key, encoder.encode(JSON.stringify(value)), nonce);
}

export function openJson<T>(sodium: Sodium, key: Uint8Array, envelope: Uint8Array): T {
  return JSON.parse(decoder.decode(open(sodium, key, envelope))) as T;
}
