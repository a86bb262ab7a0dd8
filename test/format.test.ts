import { describe, expect, it } from 'vitest';
import vectors from './vectors/format.json' with { type: 'json' };
import { formatAuthId, generateAuthId, isKeyId, parseAuthId } from '../src/crypto/authid.ts';
import { base32Decode, base32Encode } from '../src/crypto/base32.ts';
import { deriveKeys, open, seal } from '../src/crypto/seal.ts';
import { loadSodium } from '../src/crypto/sodium.ts';
import { BrokerError } from '../src/errors.ts';
import { AUTHID } from './support/authid.ts';

const sodium = await loadSodium();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

describe('docs/format.md test vectors', () => {
  for (const v of vectors.good) {
    it(`derives, seals and opens ${v.keyid}`, () => {
      expect(formatAuthId(unhex(v.keyid_bytes), unhex(v.secret_bytes))).toBe(v.authid);
      const id = parseAuthId(v.authid);
      expect(id.keyid).toBe(v.keyid);
      expect(hex(id.secret)).toBe(v.secret_bytes);
      const keys = deriveKeys(sodium, id);
      expect(hex(keys.sealKey)).toBe(v.seal_key);
      expect(hex(keys.checkTag)).toBe(v.check_tag);
      expect(hex(seal(sodium, keys.sealKey, new TextEncoder().encode(v.plaintext), unhex(v.nonce)))).toBe(v.envelope);
      expect(new TextDecoder().decode(open(sodium, keys.sealKey, unhex(v.envelope)))).toBe(v.plaintext);
    });
  }

  for (const v of vectors.open_must_fail) {
    it(`refuses to open: ${v.why}`, () => {
      const keys = deriveKeys(sodium, parseAuthId(v.authid));
      let caught: unknown;
      try {
        open(sodium, keys.sealKey, unhex(v.envelope));
      } catch (e) {
        caught = e;
      }
      // One generic error whatever failed: nobody learns which check it was.
      expect(caught).toBeInstanceOf(BrokerError);
      expect((caught as BrokerError).code).toBe('invalid_authid');
    });
  }

  for (const v of vectors.parse_must_fail) {
    it(`rejects a malformed authid: ${v.why}`, () => {
      let caught: BrokerError | undefined;
      try {
        parseAuthId(v.authid);
      } catch (e) {
        caught = e as BrokerError;
      }
      expect(caught?.code).toBe('authid_malformed');
      // The message explains the shape but never repeats what was pasted.
      const secretPart = v.authid.split(':').at(-1) ?? '';
      if (secretPart.length > 8) expect(caught!.message).not.toContain(secretPart);
    });
  }

  for (const v of vectors.parse_must_accept) {
    it(`accepts what copy and paste does: ${v.why}`, () => {
      expect(parseAuthId(v.authid).keyid).toBe(v.keyid);
    });
  }
});

describe('authid generation', () => {
  it('draws keyid and secret from the CSPRNG and round-trips', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { authid, parsed } = generateAuthId((n) => sodium.randombytes_buf(n));
      expect(authid).toMatch(AUTHID);
      expect(isKeyId(parsed.keyid)).toBe(true);
      expect(parseAuthId(authid).keyid).toBe(parsed.keyid);
      seen.add(parsed.keyid);
    }
    expect(seen.size).toBe(200);
  });

  it('says what a Duplicati or v2 authid is instead of a generic error', () => {
    expect(() => parseAuthId('v2:onedrivev2:M.R3_BAY.abc')).toThrow(/v2 AuthID/);
    expect(() => parseAuthId('0123456789abcdef0123456789abcdef:Ab-1.c_D!e')).toThrow(/Duplicati/);
  });
});

describe('base32', () => {
  it('matches RFC 4648 (lowercase, whole groups)', () => {
    expect(base32Encode(new TextEncoder().encode('fooba'))).toBe('mzxw6ytb');
    expect(base32Encode(new TextEncoder().encode('foobarbaz!'))).toBe('mzxw6ytbojrgc6rb');
    expect(new TextDecoder().decode(base32Decode('mzxw6ytb')!)).toBe('fooba');
  });
  it('rejects non-canonical input', () => {
    expect(base32Decode('mzxw6yt')).toBeNull();
    expect(base32Decode('mzxw6yt1')).toBeNull();
    expect(base32Decode('MZXW6YTB')).toBeNull();
  });
});
