/** oidc-provider, loaded once and quietly, and the one signing key of the process. */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type OidcProvider from 'oidc-provider';

let providerModule: Promise<typeof OidcProvider> | undefined;

/**
 * oidc-provider prints "Unsupported runtime" at import time when it sees Bun.
 * That is noise for us (it works), so the warning is filtered for exactly the
 * duration of the first import.
 */
export function loadProvider(): Promise<typeof OidcProvider> {
  providerModule ??= (async () => {
    const original = console.warn;
    console.warn = (...args: unknown[]): void => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
      original(...args);
    };
    try {
      return (await import('oidc-provider')).default;
    } finally {
      console.warn = original;
    }
  })();
  return providerModule;
}

// A 2048-bit RSA key takes noticeable time to generate; one per process is
// plenty and keeps per-test startup fast. Supplying our own key also avoids
// oidc-provider's "development-only signing keys" warning.
let signingJwk: object | undefined;

export function getSigningJwk(): object {
  if (!signingJwk) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = randomBytes(12).toString('base64url');
    signingJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  }
  return signingJwk;
}
