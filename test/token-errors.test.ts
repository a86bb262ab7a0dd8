/**
 * How the broker reads Microsoft's token-endpoint errors (src/oauth/token-endpoint.ts),
 * as tables: the error body reduced to its tokens (`parseProviderError`), each
 * `error` and AADSTS code → the broker's code and sentence (`judge`), and the
 * message and hint a caller gets (`classify`). The description text never counts.
 */
import { describe, expect, it } from 'vitest';
import { classify, judge, parseProviderError, type ProviderError } from '../src/oauth/token-endpoint.ts';

const err = (error: string, errorCodes: number[] = [], over: Partial<ProviderError> = {}): ProviderError => ({ status: 400, error, errorCodes, ...over });

describe('parseProviderError', () => {
  it.each([
    [
      'an Entra error body',
      400,
      {
        error: 'invalid_grant',
        error_description: 'AADSTS70008: The provided authorization code or refresh token has expired. Trace ID: x',
        error_codes: [70008],
        trace_id: 'trace-1',
        correlation_id: 'corr-1',
      },
      { status: 400, error: 'invalid_grant', errorCodes: [70008], traceId: 'trace-1', correlationId: 'corr-1' },
    ],
    [
      'several codes, non-numbers dropped',
      401,
      { error: 'invalid_client', error_codes: [7000215, '7000222', null, 7000222] },
      { status: 401, error: 'invalid_client', errorCodes: [7000215, 7000222] },
    ],
    ['no JSON at all', 502, undefined, { status: 502, error: '', errorCodes: [] }],
    ['a JSON string', 500, 'Internal Server Error', { status: 500, error: '', errorCodes: [] }],
    ['null', 503, null, { status: 503, error: '', errorCodes: [] }],
    ['fields of the wrong type', 400, { error: 42, error_codes: 'AADSTS70008', trace_id: 7, correlation_id: {} }, { status: 400, error: '', errorCodes: [] }],
  ])('%s', (_, status, json, expected) => {
    const p = parseProviderError(status, json);
    expect(p).toEqual({ traceId: undefined, correlationId: undefined, ...expected });
    // The description can echo request values: it is never kept.
    expect(JSON.stringify(p)).not.toContain('AADSTS70008:');
  });
});

describe('judge: each error and AADSTS code → the broker code and why', () => {
  it.each([
    // Microsoft asks for a new sign-in.
    ['invalid_grant', [], 'login_required', 'the connection is no longer valid'],
    ['invalid_grant', [70000], 'login_required', 'the connection is no longer valid'],
    ['invalid_grant', [700082], 'login_required', 'the connection was not used for 90 days'],
    ['invalid_grant', [70008], 'login_required', 'the grant was revoked or has expired'],
    ['invalid_grant', [50173], 'login_required', 'the grant was revoked or has expired'],
    ['invalid_grant', [70043], 'login_required', 'a sign-in frequency policy requires a new sign-in'],
    ['invalid_grant', [65001], 'login_required', 'consent for the app was removed'],
    ['interaction_required', [50076], 'login_required', 'the connection is no longer valid'],
    ['interaction_required', [70043], 'login_required', 'a sign-in frequency policy requires a new sign-in'],
    ['consent_required', [65001], 'login_required', 'consent for the app was removed'],
    ['login_required', [], 'login_required', 'the connection is no longer valid'],
    // The first listed reason wins when Microsoft sends several codes.
    ['invalid_grant', [70008, 700082], 'login_required', 'the connection was not used for 90 days'],
    // The app registration is wrong: the owner must act.
    ['invalid_client', [], 'app_misconfigured', 'Microsoft rejected the app registration'],
    ['invalid_client', [7000215], 'app_misconfigured', 'the app secret is wrong (was the secret ID pasted instead of its Value?)'],
    ['invalid_client', [7000222], 'app_misconfigured', 'the app secret has expired'],
    ['invalid_client', [7000218], 'app_misconfigured', 'the app secret is missing'],
    ['unauthorized_client', [700016], 'app_misconfigured', 'the client id is not known in this tenant'],
    ['invalid_client', [700011], 'app_misconfigured', 'the client id is not known in this tenant'],
    ['invalid_request', [50011], 'app_misconfigured', 'the redirect URI is not registered for the app'],
    ['invalid_grant', [70004], 'login_required', 'the connection is no longer valid'],
    ['invalid_request', [70004], 'app_misconfigured', 'the redirect URI is not registered for the app'],
    ['invalid_request', [9002332], 'app_misconfigured', "the tenant setting does not match the app's supported account types"],
    ['unauthorized_client', [50194], 'app_misconfigured', "the tenant setting does not match the app's supported account types"],
    ['invalid_request', [90130], 'app_misconfigured', "the tenant setting does not match the app's supported account types"],
    ['invalid_scope', [70011], 'app_misconfigured', 'Microsoft rejected the app registration'],
    ['unsupported_grant_type', [70003], 'app_misconfigured', 'Microsoft rejected the app registration'],
    // Anything else is Microsoft's own trouble: try again later.
    ['temporarily_unavailable', [90000], 'upstream_error', "Microsoft's token endpoint failed temporarily"],
    ['server_error', [], 'upstream_error', "Microsoft's token endpoint failed temporarily"],
    ['', [], 'upstream_error', "Microsoft's token endpoint failed temporarily"],
    // A code alone does not decide: the `error` token does.
    ['temporarily_unavailable', [7000215], 'upstream_error', "Microsoft's token endpoint failed temporarily"],
    ['something_new', [700082], 'upstream_error', "Microsoft's token endpoint failed temporarily"],
  ])('%s %j → %s: %s', (error, codes, code, why) => {
    expect(judge(err(error, codes))).toEqual({ code, why });
  });
});

describe('classify: the message and hint a caller gets', () => {
  it.each([
    [
      err('invalid_grant', [700082], { traceId: 't-1' }),
      'login_required',
      'Microsoft asks you to sign in again: the connection was not used for 90 days [invalid_grant (AADSTS700082); trace id t-1].',
      "Create a new AuthID on the broker's start page.",
    ],
    [
      err('invalid_client', [7000222], { status: 401 }),
      'app_misconfigured',
      "The broker's Microsoft app was rejected: the app secret has expired [invalid_client (AADSTS7000222)].",
      "The broker's owner must fix the app registration or run `broker init` again.",
    ],
    [
      err('invalid_client', [7000215, 7000222], { status: 401 }),
      'app_misconfigured',
      "The broker's Microsoft app was rejected: the app secret is wrong (was the secret ID pasted instead of its Value?) [invalid_client (AADSTS7000215, AADSTS7000222)].",
      "The broker's owner must fix the app registration or run `broker init` again.",
    ],
    [
      err('temporarily_unavailable', [90000], { status: 503, traceId: 't-2' }),
      'upstream_error',
      "Microsoft's token endpoint failed temporarily [temporarily_unavailable (AADSTS90000); trace id t-2].",
      'Try again later.',
    ],
    [err('', [], { status: 500 }), 'upstream_error', "Microsoft's token endpoint failed temporarily [HTTP 500].", 'Try again later.'],
  ])('%j → %s', (p, code, message, hint) => {
    const e = classify(p);
    expect(e.code).toBe(code);
    expect(e.message).toBe(message);
    expect(e.hint).toBe(hint);
  });

  it('never carries the correlation id or a description', () => {
    const e = classify(
      parseProviderError(400, {
        error: 'invalid_grant',
        error_description: 'AADSTS70008: secret-looking text',
        error_codes: [70008],
        correlation_id: 'corr-9',
      }),
    );
    expect(e.message).not.toContain('secret-looking');
    expect(e.message).not.toContain('corr-9');
  });
});
