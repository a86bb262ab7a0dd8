/**
 * What an AuthID looks like to a test: its shape (docs/format.md), how to read it
 * off the page that shows it, and well-formed AuthIDs that no broker issued.
 */

/** `bk1` + 32 base32 characters of keyid, `:`, 56 of secret. */
export const AUTHID = /^bk1[a-z2-7]{32}:[a-z2-7]{56}$/;

/** The element of the logged-in page that shows the new AuthID. */
export const AUTHID_IN_PAGE = /id="authid"[^>]*>([^<]+)</;

/** The AuthID shown on a logged-in page; throws if the page shows none. */
export function authidInPage(html: string): string {
  const m = AUTHID_IN_PAGE.exec(html);
  if (!m) throw new Error('the page shows no AuthID');
  return m[1]!;
}

/** A well-formed keyid that no broker issued: `bk1` and 32 times `fill`. */
export const fakeKeyid = (fill = 'a'): string => `bk1${fill.repeat(32)}`;

/** A well-formed AuthID: a fake keyid (or the one given) and 56 times `fill` as its secret (or the one given). */
export const fakeAuthid = (keyid = fakeKeyid(), secret = 'b'.repeat(56)): string => `${keyid}:${secret}`;
