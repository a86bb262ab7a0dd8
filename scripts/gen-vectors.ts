// Writes test/vectors/format.json from fixed inputs. Run once when the format is
// defined; the committed file then pins the format (test/format.test.ts checks
// the implementation reproduces it). Re-running must produce an identical file.
import { writeFileSync } from 'node:fs';
import { formatAuthId, parseAuthId } from '../src/crypto/authid.ts';
import { deriveKeys, seal } from '../src/crypto/seal.ts';
import { loadSodium } from '../src/crypto/sodium.ts';

const sodium = await loadSodium();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const seq = (n: number, start: number) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

const keyidBytes = seq(20, 0x00);
const secret = seq(35, 0x40);
const authid = formatAuthId(keyidBytes, secret);
const id = parseAuthId(authid);
const keys = deriveKeys(sodium, id);
const nonce = seq(24, 0xa0);
const plaintext = '{"v":1,"refreshToken":"M.C123_test-refresh-token"}';
const envelope = seal(sodium, keys.sealKey, new TextEncoder().encode(plaintext), nonce);

const wrongSecret = formatAuthId(keyidBytes, seq(35, 0x41));
const tampered = Uint8Array.from(envelope);
tampered[tampered.length - 1]! ^= 0x01;
const tamperedNonce = Uint8Array.from(envelope);
tamperedNonce[1]! ^= 0x01;
const unknownVersion = Uint8Array.from(envelope);
unknownVersion[0] = 0x02;

const vectors = {
  description: 'broker authid and envelope test vectors; see docs/format.md',
  good: [
    {
      keyid_bytes: hex(keyidBytes),
      secret_bytes: hex(secret),
      authid,
      keyid: id.keyid,
      seal_key: hex(keys.sealKey),
      check_tag: hex(keys.checkTag),
      nonce: hex(nonce),
      plaintext,
      envelope: hex(envelope),
    },
  ],
  open_must_fail: [
    { why: 'wrong secret', authid: wrongSecret, envelope: hex(envelope) },
    { why: 'tampered box (last MAC/ciphertext byte flipped)', authid, envelope: hex(tampered) },
    { why: 'tampered nonce', authid, envelope: hex(tamperedNonce) },
    { why: 'unknown envelope version 0x02', authid, envelope: hex(unknownVersion) },
    { why: 'truncated envelope', authid, envelope: hex(envelope.subarray(0, 40)) },
    { why: 'empty envelope', authid, envelope: '' },
  ],
  parse_must_fail: [
    { why: 'empty', authid: '' },
    { why: 'no colon', authid: authid.replace(':', '') },
    { why: 'wrong prefix', authid: `bk2${authid.slice(3)}` },
    { why: 'Duplicati v1 authid', authid: '0123456789abcdef0123456789abcdef:Ab-1.c_D!e' },
    { why: 'Duplicati v2 authid', authid: 'v2:onedrivev2:M.R3_BAY.refresh' },
    { why: 'keyid too short', authid: `${authid.slice(0, 34)}:${authid.slice(36)}` },
    { why: 'secret too short', authid: authid.slice(0, -1) },
    { why: 'secret too long', authid: `${authid}a` },
    { why: 'invalid character in secret (digit 1)', authid: `${authid.slice(0, -1)}1` },
    { why: 'invalid character in keyid (digit 0)', authid: `bk10${authid.slice(4)}` },
    { why: 'two colons', authid: `${authid.slice(0, 35)}::${authid.slice(37)}` },
    { why: 'oversized input', authid: 'a'.repeat(600) },
  ],
  parse_must_accept: [
    { why: 'surrounding whitespace', authid: `  ${authid}\n`, keyid: id.keyid },
    { why: 'upper case', authid: authid.toUpperCase(), keyid: id.keyid },
    { why: 'URL-encoded colon', authid: authid.replace(':', '%3A'), keyid: id.keyid },
  ],
};
writeFileSync(new URL('../test/vectors/format.json', import.meta.url), `${JSON.stringify(vectors, null, 2)}\n`);
console.log(authid);
