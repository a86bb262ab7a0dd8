import type { Broker } from '../broker/broker.ts';

/** Per-request facts the handlers need besides the Request. */
export interface ClientInfo {
  address: string;
}

/** One request as a handler sees it. */
export interface Exchange {
  req: Request;
  /** `req.method`, read once. */
  readonly method: string;
  url: URL;
  client: ClientInfo;
  /** The CSP nonce of this response's page, made on first use (JSON answers never need one). */
  readonly nonce: string;
  /** Set by handlers that learn the keyid, for the request log (first characters only). */
  keyid?: string;
}

/**
 * What the handlers work with, passed to each one. Settings are not in here: a
 * reload (`broker.reconfigure`) swaps `broker.ctx.config`, so handlers read it
 * there when they need it, never keep a copy.
 */
export interface Deps {
  broker: Broker;
  version: string;
  now: () => number;
  /** Counts token requests by outcome (metrics). */
  onRefresh?: (outcome: string) => void;
}

export type Handler = (x: Exchange, deps: Deps) => Promise<Response> | Response;
