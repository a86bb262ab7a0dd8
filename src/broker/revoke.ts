/** Ending a grant at its provider too, after the broker ended it here. */
import { BrokerError } from '../errors.ts';
import { endpointsOf, findService } from '../oauth/providers.ts';
import { needsAccessToken, revokeAtProvider } from '../oauth/revoke.ts';
import { refreshGrant } from '../oauth/token-endpoint.ts';
import { scopeString } from '../oauth/providers.ts';
import { appOf, type BrokerContext, tokenClient, UPSTREAM_TIMEOUT_MS } from './context.ts';
import type { SealedGrant } from './sealed-grant.ts';
import { MIN_REMAINING_MS } from './tokens.ts';

/**
 * - `revoked`: the provider confirmed;
 * - `failed`: it did not (`error` says why; the grant may live on there);
 * - `manual`: it has no revocation endpoint: the owner removes the app's access at `url`;
 * - `nothing`: there was no grant left to end.
 */
export type ProviderRevocation =
  | { done: 'revoked'; provider: string }
  | { done: 'failed'; provider: string; error: BrokerError }
  | { done: 'manual'; provider: string; url: string }
  | { done: 'nothing' };

export async function revokeGrantAtProvider(ctx: Pick<BrokerContext, 'config' | 'fetch' | 'now' | 'log'>, grant: SealedGrant): Promise<ProviderRevocation> {
  const service = findService(grant.service);
  if (!service) return { done: 'nothing' };
  const provider = service.provider;
  const app = appOf(ctx.config, provider);
  const revokeUrl = app && endpointsOf(provider, app).revokeUrl;
  if (provider.revocation === 'none' || !app || !revokeUrl) return { done: 'manual', provider: provider.name, url: provider.accessUrl };
  try {
    let accessToken: string | undefined = grant.accessToken;
    if (needsAccessToken(provider) && grant.accessTokenExpiresAt - ctx.now() < MIN_REMAINING_MS) {
      // Dropbox revokes with an access token only: mint one with the refresh token this revoke holds.
      accessToken = (await refreshGrant(tokenClient(ctx, service), { refreshToken: grant.refreshToken, scope: scopeString(service) })).accessToken;
    }
    await revokeAtProvider(
      {
        provider,
        fetch: ctx.fetch,
        revokeUrl,
        clientId: app.clientId,
        clientSecret: app.clientSecret,
        timeoutMs: ctx.config.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS,
      },
      { refreshToken: grant.refreshToken, accessToken },
    );
    ctx.log.info('provider.revoked', { service: service.id });
    return { done: 'revoked', provider: provider.name };
  } catch (e) {
    const error = e instanceof BrokerError ? e : new BrokerError('upstream_error', `${provider.name}'s revocation failed.`, { cause: e });
    ctx.log.warn('provider.revoke_failed', { service: service.id, error: error.code });
    return { done: 'failed', provider: provider.name, error };
  }
}

/** What happened at the provider, in one sentence (the revoke page, its JSON, `broker revoke`). */
export function atProviderSentence(p: ProviderRevocation): string | undefined {
  switch (p.done) {
    case 'revoked':
      return `${p.provider} confirmed: the grant is revoked there too.`;
    case 'failed':
      return `${p.error.message} ${p.error.hint ?? ''}`.trim();
    case 'manual':
      return `${p.provider} has no way for the broker to cancel the grant: remove the app's access at ${p.url}`;
    case 'nothing':
      return undefined;
  }
}
