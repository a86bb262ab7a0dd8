/**
 * The one error type of the broker, and the one table of its codes. Every failure a
 * user can see carries a stable `code`; what a code means, which HTTP status it
 * answers with and which exit code it ends a command with are written once, in
 * `ERRORS` below, and everything else (the `ErrorCode` type, `HTTP_STATUS`,
 * `EXIT_CODE`, the README's table, checked by test/errors.test.ts) follows from it.
 * Messages are written for the person who has to act on them and never contain a
 * secret: callers pass only public facts (field names, keyids).
 */

/**
 * Exit codes of the CLI (documented in the README). 3 is a configuration problem:
 * a service manager should not restart on it (the unit sets
 * RestartPreventExitStatus=3).
 */
export const EXIT = {
  ok: 0,
  /** An unexpected failure (a bug), or one a retry may fix. */
  failure: 1,
  /** Bad or missing flags or arguments. */
  usage: 2,
  /** No or invalid settings, or an app registration Microsoft rejects. */
  config: 3,
  /** What was asked for does not exist (e.g. an unknown keyid). */
  notFound: 4,
  /** The store or the file system (BROKER_HOME). */
  store: 5,
  /** Microsoft could not be reached or failed. */
  upstream: 6,
  /** Credentials were refused. */
  auth: 7,
} as const;

/**
 * HTTP statuses follow Duplicati's retries: it retries a 4xx once and a 5xx five
 * times with back-off, and stops at once on a 503 that carries an X-Reason; so 4xx
 * means "retrying cannot fix this", 5xx "try again later", and 503 is reserved for a
 * deliberate stop.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly exit: number;
  /** One line, as the README's error table says it. */
  readonly meaning: string;
}

export const ERRORS = {
  // The request itself is wrong; the caller must change it.
  invalid_request: { status: 400, exit: EXIT.usage, meaning: 'the request must change; the message says what is wrong' },
  authid_missing: { status: 400, exit: EXIT.usage, meaning: 'the request carries no AuthID' },
  authid_malformed: { status: 400, exit: EXIT.usage, meaning: 'the AuthID is mangled; the message says which part is wrong' },
  request_too_large: { status: 413, exit: EXIT.usage, meaning: 'the request body is larger than the broker accepts' },
  not_found: { status: 404, exit: EXIT.notFound, meaning: 'no such route, or no such connection' },
  method_not_allowed: { status: 405, exit: EXIT.usage, meaning: 'the route does not take this method' },
  unknown_service: { status: 404, exit: EXIT.usage, meaning: 'the service id is not one the broker offers' },
  // Credentials presented to the broker.
  invalid_authid: { status: 401, exit: EXIT.auth, meaning: 'unknown keyid or wrong secret (deliberately the same answer)' },
  revoked: { status: 410, exit: EXIT.auth, meaning: 'the connection was revoked; told only to the holder of the right secret' },
  passcode_invalid: { status: 403, exit: EXIT.auth, meaning: 'wrong connect passcode' },
  rate_limited: {
    status: 429,
    exit: EXIT.auth,
    meaning:
      'too many failed attempts from this address (or IPv6 /64), too many passcode checks waiting at once, or too many Duplicati logins waiting; see Retry-After',
  },
  // The login round trip.
  login_state_invalid: { status: 400, exit: EXIT.auth, meaning: "the login's state or cookie is missing, used or expired; start again" },
  login_failed: { status: 400, exit: EXIT.auth, meaning: 'Microsoft did not complete the login; start again' },
  id_token_invalid: { status: 400, exit: EXIT.auth, meaning: "Microsoft's id_token failed a check; start again" },
  // Microsoft's answers.
  login_required: { status: 400, exit: EXIT.auth, meaning: 'the provider wants a new sign-in; create a new AuthID' },
  app_misconfigured: { status: 502, exit: EXIT.config, meaning: "the provider rejected the broker's app registration; its owner must fix it" },
  upstream_error: { status: 502, exit: EXIT.upstream, meaning: 'the provider failed or could not be reached; try again later' },
  upstream_timeout: { status: 504, exit: EXIT.upstream, meaning: 'Microsoft did not answer in time; try again later' },
  conflict: { status: 500, exit: EXIT.failure, meaning: 'another process changed the connection meanwhile; try again' },
  // The broker's own environment.
  config_missing: { status: 500, exit: EXIT.config, meaning: 'no settings yet; run `broker init`' },
  config_invalid: { status: 500, exit: EXIT.config, meaning: 'the settings are invalid; run `broker init` again' },
  usage: { status: 400, exit: EXIT.usage, meaning: 'bad or missing flags or arguments' },
  store_error: { status: 500, exit: EXIT.store, meaning: 'the store or BROKER_HOME could not be read or written (see the message)' },
  listen_failed: { status: 500, exit: EXIT.failure, meaning: 'the listen address cannot be used (yet)' },
  service_manager_failed: { status: 500, exit: EXIT.failure, meaning: 'systemctl is missing or failed; the hint lists the commands to run by hand' },
  internal: { status: 500, exit: EXIT.failure, meaning: "a bug; see the broker's log" },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

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
