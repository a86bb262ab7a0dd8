import type { Sodium } from './sodium.ts';

/**
 * libsodium's own keyed BLAKE2b and secretbox, called on one scratch area in its
 * WebAssembly memory. libsodium-wrappers' glue mallocs, copies in, copies out and
 * frees every argument of every call; that glue, the envelope's concat and the
 * JSON's intermediate bytes were 0.76× → 0.9× of raw libsodium in bench row 6.
 * Here the JSON is encoded straight into the heap, sealed in place behind room
 * for the version and nonce, and leaves the heap once, as the finished envelope.
 *
 * Nothing here awaits or calls back, so two calls never use the area at once.
 * Every call zeroes what it put there (keys, the secret, the plaintext) before it
 * returns: the area outlives the call, and the last refresh token sealed must
 * not sit in it until the next one. (libsodium's BLAKE2b leaves its last output
 * on libsodium's own stack, as it did under the wrappers: out of reach here.)
 */

/** The raw exports libsodium-wrappers exposes, untyped, as `sodium.libsodium`; 64-bit lengths are passed as two 32-bit halves. */
interface Raw {
  readonly HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  _crypto_generichash(out: number, outlen: number, msg: number, msglenLo: number, msglenHi: number, key: number, keylen: number): number;
  _crypto_secretbox_easy(c: number, m: number, mlenLo: number, mlenHi: number, nonce: number, key: number): number;
  _crypto_secretbox_open_easy(m: number, c: number, clenLo: number, clenHi: number, nonce: number, key: number): number;
}

const KEY_BYTES = 32; // crypto_secretbox_KEYBYTES, and the derived keys' length
const NONCE_BYTES = 24; // crypto_secretbox_NONCEBYTES
const MAC_BYTES = 16; // crypto_secretbox_MACBYTES
const HASH_KEY_MIN = 16; // crypto_generichash_KEYBYTES_MIN
const HASH_KEY_MAX = 64; // crypto_generichash_KEYBYTES_MAX

// Offsets in the area.
const KEY = 0; // the secretbox key, or keyed BLAKE2b's output
const HASH_KEY = KEY + KEY_BYTES;
const ENVELOPE = HASH_KEY + HASH_KEY_MAX; // version, nonce, box; or keyed BLAKE2b's message
const NONCE = ENVELOPE + 1;
const BOX = NONCE + NONCE_BYTES;
// crypto_secretbox_easy writes MAC || ciphertext over MAC room || plaintext, and opening reverses it: in place, no copy.
const PLAIN = BOX + MAC_BYTES;
const HEADER = PLAIN - ENVELOPE;

const encoder = new TextEncoder();

export class Scratch {
  private base = 0;
  private size = 0;

  constructor(private readonly raw: Raw) {}

  /** BLAKE2b-256 keyed with `key` of `prefix || UTF-8(text)`. */
  keyedHash(key: Uint8Array, prefix: Uint8Array, text: string): Uint8Array {
    if (key.length < HASH_KEY_MIN || key.length > HASH_KEY_MAX) throw new TypeError('invalid key length');
    const heap = this.reserve(ENVELOPE + prefix.length + text.length * 3);
    const at = this.base;
    heap.set(key, at + HASH_KEY);
    heap.set(prefix, at + ENVELOPE);
    const { written } = encoder.encodeInto(text, heap.subarray(at + ENVELOPE + prefix.length, at + this.size));
    try {
      if (this.raw._crypto_generichash(at + KEY, KEY_BYTES, at + ENVELOPE, prefix.length + written, 0, at + HASH_KEY, key.length) !== 0) {
        throw new Error('invalid usage');
      }
      return heap.slice(at + KEY, at + KEY + KEY_BYTES);
    } finally {
      heap.fill(0, at, at + ENVELOPE + prefix.length + written);
    }
  }

  /** `version || nonce || crypto_secretbox_easy(plaintext, nonce, key)`, with a fresh CSPRNG nonce unless one is given. */
  seal(version: number, key: Uint8Array, plaintext: Uint8Array | string, nonce?: Uint8Array): Uint8Array {
    if (key.length !== KEY_BYTES) throw new TypeError('invalid key length');
    if (nonce && nonce.length !== NONCE_BYTES) throw new TypeError('invalid nonce length');
    // A UTF-16 code unit is at most 3 UTF-8 bytes.
    const heap = this.reserve(PLAIN + (typeof plaintext === 'string' ? plaintext.length * 3 : plaintext.length));
    const at = this.base;
    let length = plaintext.length;
    if (typeof plaintext === 'string') length = encoder.encodeInto(plaintext, heap.subarray(at + PLAIN, at + this.size)).written;
    else heap.set(plaintext, at + PLAIN);
    heap.set(key, at + KEY);
    heap[at + ENVELOPE] = version;
    if (nonce) heap.set(nonce, at + NONCE);
    else crypto.getRandomValues(heap.subarray(at + NONCE, at + BOX));
    try {
      if (this.raw._crypto_secretbox_easy(at + BOX, at + PLAIN, length, 0, at + NONCE, at + KEY) !== 0) throw new Error('invalid usage');
      return heap.slice(at + ENVELOPE, at + PLAIN + length);
    } finally {
      heap.fill(0, at, at + PLAIN + length);
    }
  }

  /**
   * What `use` makes of the plaintext of an envelope whose version the caller has
   * checked (the plaintext is a view into the heap, zeroed when `use` returns);
   * null when the box does not open.
   */
  open<T>(key: Uint8Array, envelope: Uint8Array, use: (plaintext: Uint8Array) => T): T | null {
    if (key.length !== KEY_BYTES || envelope.length < HEADER) return null;
    const heap = this.reserve(ENVELOPE + envelope.length);
    const at = this.base;
    heap.set(envelope, at + ENVELOPE);
    heap.set(key, at + KEY);
    try {
      if (this.raw._crypto_secretbox_open_easy(at + PLAIN, at + BOX, envelope.length - (BOX - ENVELOPE), 0, at + NONCE, at + KEY) !== 0) {
        return null;
      }
      return use(heap.subarray(at + PLAIN, at + ENVELOPE + envelope.length));
    } finally {
      heap.fill(0, at, at + ENVELOPE + envelope.length);
    }
  }

  /** The heap's bytes with room for `bytes` in the area; growing the memory replaces the view, so callers take this one. */
  private reserve(bytes: number): Uint8Array {
    if (bytes > this.size) {
      if (this.base) this.raw._free(this.base);
      this.size = Math.max(16_384, bytes);
      this.base = this.raw._malloc(this.size);
      if (!this.base) {
        this.size = 0;
        throw new Error('_malloc() failed');
      }
    }
    return this.raw.HEAPU8;
  }
}

const areas = new WeakMap<Sodium, Scratch>();

export function scratchOf(sodium: Sodium): Scratch {
  let area = areas.get(sodium);
  if (!area) areas.set(sodium, (area = new Scratch((sodium as unknown as { libsodium: Raw }).libsodium)));
  return area;
}
