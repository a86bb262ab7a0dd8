/**
 * Ending a grant at the provider, in the way its data says (providers.ts
 * `revocation`): Google takes the refresh token alone, Box the refresh token with
 * the app's id and secret, Dropbox an access token as Bearer (which also ends its
 * refresh token). Microsoft and pCloud have no such endpoint.
 */
import { BrokerError } from '../errors.ts';
import type { Provider } from './providers.ts';
import type { Fetch } from './token-endpoint.ts';

export interface RevokeClient {
  provider: Provider;
  fetch: Fetch;
  revokeUrl: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
}

/** Whether the provider needs a live access token to revoke (Dropbox), so the caller mints one first if needed. */
export function needsAccessToken(p: Provider): boolean {
  return p.revocation === 'bearer-access';
}

/** Throws `upstream_error` naming the provider when it did not confirm. */
export async function revokeAtProvider(c: RevokeClient, grant: { refreshToken: string; accessToken?: string }): Promise<void> {
  const { provider } = c;
  let init: RequestInit;
  switch (provider.revocation) {
    case 'none':
      return;
    case 'token':
      init = { body: new URLSearchParams({ token: grant.refreshToken }), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
      break;
    case 'client-token':
      init = {
        body: new URLSearchParams({ client_id: c.clientId, client_secret: c.clientSecret, token: grant.refreshToken }),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      };
      break;
    case 'bearer-access':
      init = { body: 'null', headers: { authorization: `Bearer ${grant.accessToken ?? ''}`, 'content-type': 'application/json' } };
      break;
  }
  let res: Response;
  try {
    res = await c.fetch(c.revokeUrl, { method: 'POST', redirect: 'error', signal: AbortSignal.timeout(c.timeoutMs), ...init });
    await res.arrayBuffer().catch(() => undefined);
  } catch (e) {
    throw new BrokerError('upstream_error', `${provider.name}'s revocation endpoint could not be reached, so the grant may still be alive there.`, {
      cause: e,
      hint: `Remove the app's access at ${provider.accessUrl}`,
    });
  }
  if (!res.ok) {
    throw new BrokerError('upstream_error', `${provider.name} did not confirm the revocation (HTTP ${res.status}), so the grant may still be alive there.`, {
      hint: `Remove the app's access at ${provider.accessUrl}`,
    });
  }
}
