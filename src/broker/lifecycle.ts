import { findService, MICROSOFT, PROVIDERS, type ProviderId } from '../oauth/providers.ts';
import type { BrokerConfig } from './context.ts';
import type { ConnectionInfo } from '../store/store.ts';

/** Microsoft ends a refresh token that was not used for 90 days (AADSTS700082); other providers say their own (`idleDays`). */
export const IDLE_LIMIT_DAYS = 90;
export const IDLE_WARNING_DAYS = 60;
/** Warn this long before a provider's idle limit. */
export const IDLE_WARNING_BEFORE_DAYS = IDLE_LIMIT_DAYS - IDLE_WARNING_DAYS;
export const SECRET_WARNING_DAYS = 30;
export const DAY_MS = 86_400_000;

/**
 * The idle clock runs from the last use of the refresh token at Microsoft, which
 * is the last refresh (or the login). The broker cannot refresh on its own to
 * keep a connection alive: it cannot open the sealed token without the authid.
 */
export function idleExpiresAt(c: Pick<ConnectionInfo, 'lastRefreshAt' | 'createdAt'> & { service?: string }): number | null {
  const days = c.service === undefined ? IDLE_LIMIT_DAYS : findService(c.service)?.provider.idleDays;
  return days === undefined ? null : (c.lastRefreshAt ?? c.createdAt) + days * DAY_MS;
}

export function connectionWarnings(c: ConnectionInfo, now: number): string[] {
  const out: string[] = [];
  const provider = findService(c.service)?.provider ?? MICROSOFT;
  if (c.state === 'login_required') out.push(`${provider.name} asks for a new sign-in: create a new AuthID on the start page.`);
  if (c.state !== 'active') return out;
  const idleDays = Math.floor((now - (c.lastRefreshAt ?? c.createdAt)) / DAY_MS);
  const ends = idleExpiresAt(c);
  if (ends !== null && provider.idleDays !== undefined && idleDays >= provider.idleDays - IDLE_WARNING_BEFORE_DAYS) {
    const end = new Date(ends).toISOString().slice(0, 10);
    out.push(`Not refreshed for ${idleDays} days: ${provider.name} ends this connection on ${end} unless it is used before.`);
  }
  return out;
}

/** Days until the app secret expires, or null if the date is unknown. */
export function secretDaysLeft(secretExpires: string | undefined, now: number): number | null {
  if (!secretExpires) return null;
  const end = Date.parse(`${secretExpires}T00:00:00Z`);
  return Number.isNaN(end) ? null : Math.floor((end - now) / DAY_MS);
}

export function secretWarning(secretExpires: string | undefined, now: number): string | null {
  const days = secretDaysLeft(secretExpires, now);
  if (days === null || days > SECRET_WARNING_DAYS) return null;
  if (days < 0) return `The app secret expired on ${secretExpires}: every refresh fails. Create a new secret in Entra and run \`broker init\` again.`;
  return `The app secret expires in ${days} days (${secretExpires}). Create a new secret in Entra and run \`broker init\` again before then.`;
}

/** The secret warnings of every app the broker has, each naming its provider (Microsoft's as before). */
export function appSecretWarnings(config: Pick<BrokerConfig, 'secretExpires' | 'providers'>, now: number): string[] {
  const out: string[] = [];
  const ms = secretWarning(config.secretExpires, now);
  if (ms) out.push(ms);
  for (const [id, app] of Object.entries(config.providers ?? {})) {
    const days = secretDaysLeft(app?.secretExpires, now);
    if (days === null || days > SECRET_WARNING_DAYS) continue;
    const name = PROVIDERS[id as ProviderId]?.name ?? id;
    const fix = `Create a new secret in the ${name} console and run \`broker init --provider ${id}\` again`;
    out.push(
      days < 0
        ? `The ${name} app secret expired on ${app!.secretExpires}: every ${name} refresh fails. ${fix}.`
        : `The ${name} app secret expires in ${days} days (${app!.secretExpires}). ${fix} before then.`,
    );
  }
  return out;
}
