/**
 * The stand-ins' behaviours, one per provider, as docs/research/providers.md
 * found them (docs/providers.md says what each models and what it leaves out).
 */
import type { StandInBehaviour, StandInKind } from './stand-in.ts';

export const GOOGLE: StandInBehaviour = {
  kind: 'google',
  refreshTokens: 'reusable',
  offlineWhen: { access_type: 'offline' },
  reconsentParam: ['prompt', 'consent'],
  grantError: { status: 400, body: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' } },
  clientError: { status: 401, body: { error: 'invalid_client', error_description: 'Unauthorized' } },
  revocation: 'token',
  accessTokenTtl: 3599,
};

export const DROPBOX: StandInBehaviour = {
  kind: 'dropbox',
  refreshTokens: 'reusable',
  offlineWhen: { token_access_type: 'offline' },
  enabledScopes: ['account_info.read', 'files.content.write', 'files.content.read', 'files.metadata.read', 'files.metadata.write'],
  grantError: { status: 400, body: { error: 'invalid_grant', error_description: 'refresh token is invalid or revoked' } },
  clientError: { status: 400, body: { error: 'invalid_client', error_description: 'Invalid client_id or client_secret' } },
  refusedOnRefresh: ['redirect_uri'],
  revocation: 'bearer-access',
  accessTokenTtl: 14_400,
};

export const BOX: StandInBehaviour = {
  kind: 'box',
  refreshTokens: 'single-use',
  grantError: { status: 400, body: { error: 'invalid_grant', error_description: 'Refresh token has expired' } },
  clientError: { status: 400, body: { error: 'invalid_client', error_description: 'The client credentials are not valid' } },
  revocation: 'client-token',
  accessTokenTtl: 3600,
};

export const PCLOUD: StandInBehaviour = {
  kind: 'pcloud',
  refreshTokens: 'none',
  grantError: { status: 200, body: { result: 2000, error: 'Log in failed.' } },
  // pCloud's number for a wrong client is not documented: 1022 is this stand-in's choice (docs/providers.md).
  clientError: { status: 200, body: { result: 1022, error: 'Invalid client_id or client_secret.' } },
  revocation: 'none',
  hostnameCallback: true,
};

export const PRESETS: Record<StandInKind, StandInBehaviour> = { google: GOOGLE, dropbox: DROPBOX, box: BOX, pcloud: PCLOUD };
