/**
 * RFC 4648 base32, lowercase, no padding. Used for authids because it survives
 * URLs, headers, shell quoting and double-click selection, and has no look-alike
 * punctuation. Only whole 5-byte groups are encoded so every string has exactly
 * one decoding (no loose trailing bits to normalise).
 */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const LOOKUP = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

export function base32Encode(bytes: Uint8Array): string {
  if (bytes.length % 5 !== 0) throw new RangeError('base32Encode: length must be a multiple of 5');
  let out = '';
  for (let i = 0; i < bytes.length; i += 5) {
    // 40 bits do not fit in a 32-bit int; split into a high byte and the low 32 bits.
    const hi = bytes[i]!;
    const lo = ((bytes[i + 1]! << 24) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 8) | bytes[i + 4]!) >>> 0;
    const v = hi * 2 ** 32 + lo;
    for (let s = 35; s >= 0; s -= 5) out += ALPHABET[Math.floor(v / 2 ** s) % 32];
  }
  return out;
}

/** Returns null (never throws) for anything that is not canonical lowercase base32 of whole groups. */
export function base32Decode(text: string): Uint8Array | null {
  if (text.length % 8 !== 0) return null;
  const out = new Uint8Array((text.length / 8) * 5);
  for (let g = 0, o = 0; g < text.length; g += 8, o += 5) {
    // Each group of 8 characters is 40 bits: two 20-bit halves keep the arithmetic in 32-bit integers.
    let hi = 0;
    let lo = 0;
    for (let j = 0; j < 4; j++) {
      const a = text.charCodeAt(g + j);
      const b = text.charCodeAt(g + 4 + j);
      const da = a < 128 ? LOOKUP[a]! : -1;
      const db = b < 128 ? LOOKUP[b]! : -1;
      if ((da | db) < 0) return null;
      hi = (hi << 5) | da;
      lo = (lo << 5) | db;
    }
    out[o] = hi >>> 12;
    out[o + 1] = (hi >>> 4) & 255;
    out[o + 2] = ((hi & 15) << 4) | (lo >>> 16);
    out[o + 3] = (lo >>> 8) & 255;
    out[o + 4] = lo & 255;
  }
  return out;
}

export function isBase32(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || LOOKUP[c]! < 0) return false;
  }
  return true;
}
