/** Entra's error bodies for what oidc-provider refuses: AADSTS codes, trace and correlation ids. */
import { randomUUID } from 'node:crypto';
import type { ErrorOut } from 'oidc-provider';

export function isErrorBody(body: unknown): body is ErrorOut {
  return typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string';
}

/** AADSTS codes for the oidc-provider failures a broker is likely to meet. */
function entraErrorCode(error: string, detail: string | undefined): number {
  switch (detail) {
    case 'refresh token is expired':
      return 700082;
    case 'authorization code is expired':
      return 70008;
    case 'authorization code already consumed':
      return 54005;
    case 'authorization code redirect_uri mismatch':
      return 70000;
    default:
      break;
  }
  switch (error) {
    case 'invalid_grant':
      return 70000;
    case 'invalid_client':
      return 7000215;
    case 'invalid_request':
      return 900144;
    case 'unsupported_grant_type':
      return 70003;
    case 'invalid_scope':
      return 70011;
    case 'unauthorized_client':
      return 700016;
    default:
      return 90000;
  }
}

/** Entra's error body shape: `{error, error_description, error_codes, timestamp, trace_id, correlation_id}`. */
export function entraErrorBody(out: ErrorOut, detail: string | undefined): Record<string, unknown> {
  const code = entraErrorCode(out.error, detail);
  const timestamp = new Date()
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
  const traceId = randomUUID();
  const correlationId = randomUUID();
  const reason = detail ?? out.error_description ?? out.error;
  return {
    error: out.error,
    error_description: `AADSTS${code}: ${reason}. Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  };
}
