import { createHash, randomBytes } from 'node:crypto';

/** RFC 7636 S256: 32 random bytes give a 43-character verifier, the minimum length. */
export function createPkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}
