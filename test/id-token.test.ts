import { describe, expect, it } from 'vitest';
import { readIdToken } from '../src/oauth/id-token.ts';

const authority = 'https://login.example.test';
const tid = '9188040d-6c67-4c5b-b112-36a304b66dad';
const now = Date.UTC(2026, 10, 28, 12);
const base = {
  aud: 'client-1',
  iss: `${authority}/${tid}/v2.0`,
  tid,
  oid: '00000000-0000-0000-0000-0000000000aa',
  nonce: 'n-123',
  exp: now / 1000 + 3600,
  iat: now / 1000,
  name: 'Alice',
  preferred_username: 'alice@outlook.com',
};
const jwt = (claims: object) => `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;
const expect_ = { clientId: 'client-1', nonce: 'n-123', authority, now };

describe('id_token checks', () => {
  it('reads tid, oid, name and username from a valid token', () => {
    expect(readIdToken(jwt(base), expect_)).toEqual({ tid, oid: base.oid, name: 'Alice', username: 'alice@outlook.com' });
  });

  const cases: [string, object, RegExp][] = [
    ['a nonce from another login', { nonce: 'n-other' }, /nonce/],
    ['no nonce', { nonce: undefined }, /nonce/],
    ['another audience', { aud: 'client-2' }, /aud/],
    ['an issuer of another authority', { iss: `https://evil.test/${tid}/v2.0` }, /iss/],
    ['an issuer of another tenant', { iss: `${authority}/00000000-0000-0000-0000-000000000001/v2.0` }, /iss/],
    ['an expired token', { exp: now / 1000 - 600 }, /expired/],
    ['a token from the future', { iat: now / 1000 + 3600 }, /future/],
    ['no tid', { tid: undefined }, /tid/],
  ];
  for (const [what, patch, why] of cases) {
    it(`rejects ${what}`, () => {
      expect(() => readIdToken(jwt({ ...base, ...patch }), expect_)).toThrow(why);
    });
  }

  it('rejects something that is not a JWT', () => {
    expect(() => readIdToken('not-a-jwt', expect_)).toThrow(/not a JWT/);
    expect(() => readIdToken('a.%%%.c', expect_)).toThrow(/not JSON/);
  });
});
