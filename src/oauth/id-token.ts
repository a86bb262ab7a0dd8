import { safeEqual } from '../crypto/compare.ts';
import { BrokerError } from '../errors.ts';

/** Who signed in, where the provider says (Microsoft's id_token); empty for the others. */
export interface Account {
  tid?: string;
  oid?: string;
  name?: string;
  username?: string;
}

/**
 * Reads the id_token that came back from the token endpoint. The signature is not
 * checked: the token arrived over TLS directly from the issuer in answer to our
 * authenticated request, which OpenID Connect Core 3.1.3.7 allows in place of a
 * signature check. What matters against injection is checked: audience, nonce,
 * lifetime, and an issuer of the form {authority}/{tid}/v2.0.
 */
export function readIdToken(idToken: string, expect: { clientId: string; nonce: string; authority: string; now: number }): Account {
  const parts = idToken.split('.');
  if (parts.length !== 3) throw invalid('it is not a JWT');
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    throw invalid('its payload is not JSON');
  }
  if (!claims || typeof claims !== 'object') throw invalid('its payload is not an object');
  const aud = claims.aud;
  if (!(aud === expect.clientId || (Array.isArray(aud) && aud.includes(expect.clientId)))) throw invalid('"aud" is not this app');
  if (typeof claims.nonce !== 'string' || !safeEqual(claims.nonce, expect.nonce)) throw invalid('"nonce" does not match the login');
  const nowSec = Math.floor(expect.now / 1000);
  const skew = 300;
  if (typeof claims.exp !== 'number' || claims.exp + skew < nowSec) throw invalid('it has expired ("exp")');
  if (typeof claims.iat === 'number' && claims.iat - skew > nowSec) throw invalid('it was issued in the future ("iat")');
  const tid = claims.tid;
  if (typeof tid !== 'string' || tid.length === 0) throw invalid('"tid" is missing');
  const iss = typeof claims.iss === 'string' ? claims.iss : '';
  if (iss !== `${expect.authority.replace(/\/+$/, '')}/${tid}/v2.0`) throw invalid('"iss" does not match the authority and tenant');
  const oid = typeof claims.oid === 'string' ? claims.oid : typeof claims.sub === 'string' ? claims.sub : '';
  if (!oid) throw invalid('"oid" is missing');
  return {
    tid,
    oid,
    name: typeof claims.name === 'string' ? claims.name : undefined,
    username: typeof claims.preferred_username === 'string' ? claims.preferred_username : undefined,
  };
}

function invalid(why: string): BrokerError {
  return new BrokerError('id_token_invalid', `Microsoft's id_token was rejected: ${why}.`, { hint: 'Start the login again.' });
}
