import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time equality for secrets (strings are compared as UTF-8 bytes). */
export function safeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = typeof a === 'string' ? Buffer.from(a) : a;
  const y = typeof b === 'string' ? Buffer.from(b) : b;
  return x.length === y.length && timingSafeEqual(x, y);
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
