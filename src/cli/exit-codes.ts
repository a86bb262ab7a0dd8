import type { ErrorCode } from '../errors.ts';

/**
 * The one mapping from error codes to exit codes (documented in the README).
 * 3 is a configuration problem: a service manager should not restart on it.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  notFound: 4,
  store: 5,
  upstream: 6,
  auth: 7,
} as const;

export const EXIT_CODE: Record<ErrorCode, number> = {
  invalid_request: EXIT.usage,
  authid_missing: EXIT.usage,
  authid_malformed: EXIT.usage,
  request_too_large: EXIT.usage,
  not_found: EXIT.notFound,
  method_not_allowed: EXIT.usage,
  unknown_service: EXIT.usage,
  invalid_authid: EXIT.auth,
  revoked: EXIT.auth,
  passcode_invalid: EXIT.auth,
  rate_limited: EXIT.auth,
  login_state_invalid: EXIT.auth,
  login_failed: EXIT.auth,
  id_token_invalid: EXIT.auth,
  login_required: EXIT.auth,
  app_misconfigured: EXIT.config,
  upstream_error: EXIT.upstream,
  upstream_timeout: EXIT.upstream,
  conflict: EXIT.failure,
  config_missing: EXIT.config,
  config_invalid: EXIT.config,
  usage: EXIT.usage,
  store_error: EXIT.store,
  listen_failed: EXIT.failure,
  internal: EXIT.failure,
};
