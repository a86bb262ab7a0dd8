import type { Sodium } from '../crypto/sodium.ts';
import type { Service } from '../oauth/services.ts';
import type { Fetch, TokenClient } from '../oauth/token-endpoint.ts';
import type { Store } from '../store/store.ts';

/** The settings the domain needs; the CLI's settings file is one source of them. */
export interface BrokerConfig {
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
  | { type: 'app.rejected'; reason: string }
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

/** The token endpoint of a service, as this broker's app, with at most `budgetMs` for the call. */
export function tokenClient(ctx: BrokerContext, service: Service, budgetMs = Number.POSITIVE_INFINITY): TokenClient {
  const { config } = ctx;
  const perCall = config.upstreamTimeoutMs ?? UPSTREAM_TIMEOUT_MS;
  return {
    fetch: ctx.fetch,
    tokenUrl: service.provider.tokenUrl(config.authority, config.tenant),
    clientId: config.clientId,
    clientSecret: config.clientSecret,
    timeoutMs: Math.max(1, Math.min(perCall, budgetMs)),
    headersTimeoutMs: Math.max(1, Math.min(perCall * 0.8, budgetMs)),
  };
}
