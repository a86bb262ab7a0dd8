import type { Account } from '../oauth/id-token.ts';

/** What is sealed under an authid's key: everything that would be worth stealing. */
export interface SealedGrant {
  v: 1;
  service: string;
  refreshToken: string;
  /** Kept so that a restarted broker can serve a still-valid token without calling Microsoft. */
  accessToken: string;
  accessTokenExpiresAt: number;
  accessTokenLifetime: number;
  account: Account;
  obtainedAt: number;
}
