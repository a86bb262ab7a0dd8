/** What the token endpoint counts, from zero. */
import type { EntraStats } from './config.ts';

export function freshStats(): EntraStats {
  return { tokenRequests: 0, byGrant: { authorization_code: 0, refresh_token: 0 }, reuseDetected: 0, reuseWithinGrace: 0 };
}
