/**
 * The one error type of the broker. Every failure a user can see carries a stable
 * `code`; the HTTP layer and the CLI each map codes once (http/errors.ts,
 * cli/exit-codes.ts). Messages are written for the person who has to act on them
 * and never contain a secret: callers pass only public facts (field names, keyids).
 */
export type ErrorCode =
  // The request itself is wrong; the caller must change it.
  | 'invalid_request'
  | 'authid_missing'
  | 'authid_malformed'
  | 'request_too_large'
  | 'not_found'
  | 'method_not_allowed'
  | 'unknown_service'
  // Credentials presented to the broker.
  | 'invalid_authid' // unknown keyid or wrong secret: indistinguishable on purpose
  | 'revoked' // only ever told to the holder of the right secret
  | 'passcode_invalid'
  | 'rate_limited'
  // The login round trip.
  | 'login_state_invalid'
  | 'login_failed'
  | 'id_token_invalid'
  // Microsoft's answers.
  | 'login_required' // the user must connect again (invalid_grant & co.)
  | 'app_misconfigured' // the owner must fix the app registration
  | 'upstream_error' // Microsoft failed in a way that may pass
  | 'upstream_timeout'
  | 'conflict' // another writer won the compare-and-swap
  // The broker's own environment.
  | 'config_missing'
  | 'config_invalid'
  | 'usage'
  | 'store_error'
  | 'listen_failed'
  | 'internal';

export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly options: {
      hint?: string;
      cause?: unknown;
      retryAfter?: number;
      /** Already written to the log (serve --log-format json): the CLI prints it no more. */
      logged?: boolean;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
  }
  get hint(): string | undefined {
    return this.options.hint;
  }
}

/** Wraps anything thrown into a BrokerError without copying its text (it may hold a secret). */
export function asBrokerError(e: unknown): BrokerError {
  if (e instanceof BrokerError) return e;
  return new BrokerError('internal', 'Internal error in the broker; see its log.', { cause: e });
}
