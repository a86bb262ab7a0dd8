/**
 * Each provider's token errors read into the same three cases (sign in again,
 * app misconfigured, transient), with sentences that name the provider and
 * never carry its description text (src/oauth/provider-errors.ts).
 */
import { describe, expect, it } from 'vitest';
import { parseProviderError } from '../src/oauth/provider-errors.ts';
import { PROVIDERS, type ProviderId } from '../src/oauth/providers.ts';
import { classify } from '../src/oauth/token-endpoint.ts';

describe('three cases per provider, each sentence naming it', () => {
  it.each([
    [
      'google',
      400,
      { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' },
      'login_required',
      'Google asks you to sign in again: the grant was revoked, has expired, or was not used for 6 months [invalid_grant].',
    ],
    [
      'google',
      401,
      { error: 'invalid_client', error_description: 'Unauthorized' },
      'app_misconfigured',
      "The broker's Google app was rejected: Google rejected the app (invalid_client) [invalid_client].",
    ],
    [
      'google',
      401,
      { error: 'deleted_client' },
      'app_misconfigured',
      "The broker's Google app was rejected: Google rejected the app (deleted_client) [deleted_client].",
    ],
    ['google', 500, {}, 'upstream_error', "Google's token endpoint failed temporarily [HTTP 500]."],
    [
      'dropbox',
      400,
      { error: 'invalid_grant', error_description: 'refresh token is invalid or revoked' },
      'login_required',
      'Dropbox asks you to sign in again: the grant was revoked or has expired [invalid_grant].',
    ],
    [
      'dropbox',
      400,
      { error: 'invalid_client' },
      'app_misconfigured',
      "The broker's Dropbox app was rejected: Dropbox rejected the app (invalid_client) [invalid_client].",
    ],
    ['dropbox', 429, { error: 'too_many_requests' }, 'upstream_error', "Dropbox's token endpoint failed temporarily [too_many_requests]."],
    [
      'box',
      400,
      { error: 'invalid_grant', error_description: 'Refresh token has expired' },
      'login_required',
      'Box asks you to sign in again: the grant was revoked, or was not used for 60 days [invalid_grant].',
    ],
    [
      'box',
      400,
      { error: 'invalid_client', error_description: 'The client credentials are not valid' },
      'app_misconfigured',
      "The broker's Box app was rejected: Box rejected the app (invalid_client) [invalid_client].",
    ],
    ['box', 503, undefined, 'upstream_error', "Box's token endpoint failed temporarily [HTTP 503]."],
    [
      'pcloud',
      200,
      { result: 2012, error: 'Invalid code.' },
      'login_required',
      'pCloud asks you to sign in again: pCloud did not accept the sign-in [result 2012].',
    ],
    [
      'pcloud',
      200,
      { result: 1022, error: 'Please provide valid client_id.' },
      'app_misconfigured',
      "The broker's pCloud app was rejected: pCloud rejected the app (result 1022) [result 1022].",
    ],
    ['pcloud', 200, { result: 5000, error: 'Internal error.' }, 'upstream_error', "pCloud's token endpoint failed temporarily [result 5000]."],
    ['pcloud', 200, { result: 4000, error: 'Too many login tries.' }, 'upstream_error', "pCloud's token endpoint failed temporarily [result 4000]."],
  ] as const)('%s %i %j → %s', (id, status, body, code, message) => {
    const e = classify(parseProviderError(status, body), PROVIDERS[id as ProviderId]);
    expect(e.code).toBe(code);
    expect(e.message).toBe(message);
    // The provider's own description is never repeated.
    const description = body && 'error_description' in body ? body.error_description : undefined;
    if (description) expect(e.message).not.toContain(description);
  });

  it('an error token that is not a plain word is dropped: it would land in X-Reason', () => {
    expect(parseProviderError(400, { error: 'invalid_grant <script>' }).error).toBe('');
  });
});
