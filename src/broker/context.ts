import { BrokerError } from '../errors.ts';
import type { Sodium } from '../crypto/sodium.ts';
import { endpointsOf, type Provider, type ProviderApp, type ProviderId, type Service } from '../oauth/providers.ts';
import type { Fetch, TokenClient } from '../oauth/token-endpoint.ts';
import type { Store } from '../store/store.ts';

/** The settings the domain needs; the CLI's settings file is one source of them. */
export interface BrokerConfig {
  /** Microsoft's app (empty when the broker has none): the settings keep today's flat fields for it. */
  clientId: string;
  clientSecret: string;
  tenant: string;
  authority: string;
  /** Origin (and optional path) the browser and Microsoft see, without a trailing slash. */
  publicUrl: string;
  /** Argon2id hash (Bun.password) of the connect passcode. */
  passcodeHash: string;
  allowedOrigins: readonly string[];
  /** One call to Microsoft, in total (default 10 s). */
  upstreamTimeoutMs?: number;
  /** All attempts of one refresh together; below Duplicati's 25 s per request (default 20 s). */
  upstreamBudgetMs?: number;
  /** The app secret's expiry date (YYYY-MM-DD), for warnings. */
  secretExpires?: string;
  /** The owner's apps at the other providers, one per provider. */
  providers?: Partial<Record<Exclude<ProviderId, 'microsoft'>, ProviderApp>>;
}

/** The owner's app at a provider, or undefined when none is set up. */
export function appOf(config: BrokerConfig, provider: Provider): ProviderApp | undefined {
  if (provider.id === 'microsoft') {
    if (!config.clientId) return undefined;
    return {
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      authority: config.authority,
      tenant: config.tenant,
      secretExpires: config.secretExpires,
    };
  }
  const app = config.providers?.[provider.id];
  return app?.clientId ? app : undefined;
}

export interface Logger {
  info(event: string, fields?: Record<string, string | number | boolean | undefined>): void;
  warn(event: string, fields?: Record<string, string | number | boolean | undefined>): void;
}

/** Optional measurements (metrics); the domain only reports, it never depends on a metrics library. */
export interface Observer {
  upstreamCall(outcome: string, seconds: number): void;
  /** A notification's fate: sent, retry, gave_up, dropped (see src/notify). */
  notification?(event: string, outcome: string): void;
}

/**
 * What happened that the owner may want to hear about (notifications). Public
 * facts only: a keyid, a service id, a reason in the broker's own words; never a
 * secret. The domain only reports; what is sent, and to whom, is decided elsewhere.
 */
export type BrokerEvent =
  | { type: 'connection.login_required'; keyid: string; service: string; reason: string }
  | { type: 'connection.created'; keyid: string; service: string }
  | { type: 'connection.revoked'; keyid: string }
  | { type: 'app.rejected'; provider: string; reason: string }
  /** Every call to a provider's token endpoint: `ok`, or the error code it failed with (the outage watch counts these). */
  | { type: 'upstream.call'; provider: string; outcome: string };

export interface EventSink {
  /** Must return at once and never throw: it runs inside requests. */
  report(e: BrokerEvent): void;
}

/** Everything the broker talks to, passed in so tests can substitute the network and the clock. */
export interface BrokerContext {
  /** Replaced whole by `Broker.reconfigure`: read it where it is used, never keep a copy. */
  config: BrokerConfig;
  store: Store;
  sodium: Sodium;
  fetch: Fetch;
  now: () => number;
  /** Pauses (e.g. before a passcode check under attack); tests pass one that returns at once. */
  sleep?: (ms: number) => Promise<void>;
  log: Logger;
  observer?: Observer;
  /** Where events for the owner go (notifications); none by default. */
  events?: EventSink;
}

export const silentLogger: Logger = { info() {}, warn() {} };

export function redirectUri(config: BrokerConfig): string {
  return `${config.publicUrl}/logged-in`;
}

/** Default for one call to Microsoft, in total; 80% of it for the answer to start. */
export const UPSTREAM_TIMEOUT_MS = 10_000;
/** Default for all attempts of one refresh: below Duplicati's 25 s per request, so its own retry still runs. */
export const UPSTREAM_BUDGET_MS = 20_000;

/**
 * The token endpoint of a service, as this broker's app, with at most `budgetMs`
 * for the call; `tokenUrl` when the login named another host (pCloud, checked by the caller).
 */
export function tokenClient(
  ctx: Pick<BrokerContext, 'config' | 'fetch'>,
  service: Service,
  budgetMs = Number.POSITIVE_INFINITY,
  tokenUrl?: string,
): TokenClient {
  const { config } = ctx;
  const perCall = config.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS;
  const app = appOf(config, service.provider);
  if (!app) throw notConfigured(service);
  return {
    provider: service.provider,
    fetch: ctx.fetch,
    tokenUrl: tokenUrl ?? endpointsOf(service.provider, app).tokenUrl,
    clientId: app.clientId,
    clientSecret: app.clientSecret,
    timeoutMs: Math.max(1, Math.min(perCall, budgetMs)),
    headersTimeoutMs: Math.max(1, Math.min(perCall * 0.8, budgetMs)),
  };
}

/** A service whose provider has no app on this broker. */
export function notConfigured(service: Service): BrokerError {
  return new BrokerError('unknown_service', `This broker has no ${service.provider.name} app set up, so it cannot connect ${service.name}.`, {
    hint: `The broker's owner adds one with \`broker init --provider ${service.provider.id}\`.`,
  });
}
