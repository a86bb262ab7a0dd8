import type { Sodium } from '../crypto/sodium.ts';
import type { Fetch } from '../oauth/token-endpoint.ts';
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
}

/** Everything the broker talks to, passed in so tests can substitute the network and the clock. */
export interface BrokerContext {
  config: BrokerConfig;
  store: Store;
  sodium: Sodium;
  fetch: Fetch;
  now: () => number;
  log: Logger;
  observer?: Observer;
}

export const silentLogger: Logger = { info() {}, warn() {} };

export function redirectUri(config: BrokerConfig): string {
  return `${config.publicUrl}/logged-in`;
}
