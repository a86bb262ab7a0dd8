import { BrokerError } from '../errors.ts';
import { base32Decode, base32Encode, isBase32 } from './base32.ts';

/**
 * authid = keyid ":" secret                                   (docs/format.md)
 *   keyid  = "bk1" base32(20 random bytes)   -> 3 + 32 chars, 160 bits, the lookup key
 *   secret =       base32(35 random bytes)   -> 56 chars, 280 bits, never stored
 * "bk1" names the format version, so a future format can coexist and a pasted
 * string from another service is recognised and explained.
 */
export const AUTHID_PREFIX = 'bk1';
export const KEYID_BYTES = 20;
export const SECRET_BYTES = 35;
export const KEYID_LENGTH = AUTHID_PREFIX.length + (KEYID_BYTES / 5) * 8;
export const SECRET_LENGTH = (SECRET_BYTES / 5) * 8;
export const AUTHID_LENGTH = KEYID_LENGTH + 1 + SECRET_LENGTH;
/** Anything longer cannot be an authid; we stop looking before doing any work on it. */
export const AUTHID_MAX_INPUT = 512;

export interface AuthId {
  readonly keyid: string;
  /** The raw secret bytes: the key-derivation input. */
  readonly secret: Uint8Array;
}

export function formatAuthId(keyidBytes: Uint8Array, secret: Uint8Array): string {
  return `${formatKeyId(keyidBytes)}:${base32Encode(secret)}`;
}

export function formatKeyId(keyidBytes: Uint8Array): string {
  if (keyidBytes.length !== KEYID_BYTES) throw new RangeError('keyid must be 20 bytes');
  return AUTHID_PREFIX + base32Encode(keyidBytes);
}

export function generateAuthId(randomBytes: (n: number) => Uint8Array): { authid: string; parsed: AuthId } {
  const keyidBytes = randomBytes(KEYID_BYTES);
  const secret = randomBytes(SECRET_BYTES);
  const authid = formatAuthId(keyidBytes, secret);
  return { authid, parsed: { keyid: formatKeyId(keyidBytes), secret } };
}

/** True if the text has the shape of a keyid (used by `broker revoke <keyid or authid>`). */
export function isKeyId(text: string): boolean {
  return text.length === KEYID_LENGTH && text.startsWith(AUTHID_PREFIX) && isBase32(text.slice(AUTHID_PREFIX.length));
}

/**
 * Parses what a user pasted. Tolerates what copy and paste does to a string
 * (surrounding whitespace, upper case, a URL-encoded colon as in Duplicati issue
 * #1736) and otherwise says precisely which part is wrong, without echoing it.
 */
export function parseAuthId(input: string): AuthId {
  if (input.length > AUTHID_MAX_INPUT) {
    throw malformed(`it is ${input.length} characters long; an authid has ${AUTHID_LENGTH}`);
  }
  const trimmed = input.trim();
  const text = (trimmed.includes('%') ? trimmed.replace(/%3a/gi, ':') : trimmed).toLowerCase();
  if (text.startsWith('v2:')) {
    throw new BrokerError('authid_malformed', 'This is a v2 AuthID from another OAuth service; this broker does not accept refresh tokens.', {
      hint: "Create a new AuthID on this broker's start page.",
    });
  }
  const colon = text.indexOf(':');
  if (colon < 0) throw malformed('the ":" between keyid and secret is missing');
  const keyid = text.slice(0, colon);
  const secretText = text.slice(colon + 1);
  if (!keyid.startsWith(AUTHID_PREFIX)) {
    throw malformed(
      /^[0-9a-f]{30,32}$/.test(keyid)
        ? "it looks like an AuthID from Duplicati's hosted OAuth service, which cannot be used here"
        : `the keyid must start with "${AUTHID_PREFIX}"`,
    );
  }
  if (keyid.length !== KEYID_LENGTH || !isBase32(keyid.slice(AUTHID_PREFIX.length))) {
    throw malformed(`the keyid must be "${AUTHID_PREFIX}" and ${KEYID_LENGTH - AUTHID_PREFIX.length} letters a-z or digits 2-7`);
  }
  if (secretText.length !== SECRET_LENGTH) {
    throw malformed(`the part after ":" must be ${SECRET_LENGTH} characters; it is ${secretText.length}`);
  }
  const secret = base32Decode(secretText);
  if (!secret) throw malformed('the part after ":" may only contain letters a-z and digits 2-7');
  return { keyid, secret };
}

function malformed(detail: string): BrokerError {
  return new BrokerError('authid_malformed', `The AuthID is malformed: ${detail}.`, {
    hint: 'Copy the whole AuthID again from the page that showed it.',
  });
}
