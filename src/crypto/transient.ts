import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Short-lived shared state (a pending login, an AuthID waiting for Duplicati's
 * poll) may sit in a shared database, but never readable there: it is sealed
 * (AES-256-GCM) under a key derived from a value only its rightful reader holds
 * (the browser's login cookie, Duplicati's fetch token), and filed under a hash
 * of another. A dump of the database yields neither.
 */
function keyOf(domain: string, secret: string): Buffer {
  return createHash('sha256').update(`broker/${domain}/key\0${secret}`).digest();
}

/** The name an entry is filed under: a hash, so the table holds no token. */
export function transientId(domain: string, token: string): string {
  return createHash('sha256').update(`broker/${domain}/id\0${token}`).digest('base64url');
}

export function sealTransient(domain: string, secret: string, plaintext: string): Uint8Array {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', keyOf(domain, secret), iv);
  const body = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]);
}

/** The plaintext, or null when the secret is not the one it was sealed with. */
export function openTransient(domain: string, secret: string, sealed: Uint8Array): string | null {
  if (sealed.length < 28) return null;
  const b = Buffer.from(sealed);
  try {
    const d = createDecipheriv('aes-256-gcm', keyOf(domain, secret), b.subarray(0, 12));
    d.setAuthTag(b.subarray(12, 28));
    return Buffer.concat([d.update(b.subarray(28)), d.final()]).toString('utf8');
  } catch {
    return null;
  }
}
