/**
 * Providers and services as data, so that another provider is an entry, not a
 * code path. A *provider* is an identity platform (endpoints, quirks); a *service*
 * is what Duplicati calls a backend type (`?type=`): a provider plus scopes.
 * docs/providers.md says where each fact comes from.
 */
import { type Judge, judgeMicrosoft, judgeOAuth, judgePcloud } from './provider-errors.ts';

export type ProviderId = 'microsoft' | 'google' | 'dropbox' | 'box' | 'pcloud';

/** The three addresses of one provider's app. */
export interface Endpoints {
  authorizeUrl: string;
  tokenUrl: string;
  revokeUrl?: string;
}

/** One provider's app as the owner registered it (settings), with the endpoints it overrides. */
export interface ProviderApp {
  clientId: string;
  clientSecret: string;
  authorizeUrl?: string;
  tokenUrl?: string;
  revokeUrl?: string;
  /** YYYY-MM-DD, for reminders. */
  secretExpires?: string;
  /** Microsoft only: the identity platform and tenant its endpoints are built from. */
  authority?: string;
  tenant?: string;
}

/**
 * What happens to a refresh token when it is used:
 * - `rotating`: a new one comes back each time, the old one stays valid a while (Microsoft);
 * - `reusable`: none comes back, the one held stays valid (Google, Dropbox);
 * - `single-use`: a new one comes back, the old one is dead at once (Box);
 * - `none`: there are no refresh tokens; the access token does not expire (pCloud).
 */
export type RefreshTokens = 'rotating' | 'reusable' | 'single-use' | 'none';

/**
 * How the provider cancels a grant:
 * - `none`: it cannot (the owner removes the app's access by hand);
 * - `token`: POST `token=<refresh token>`, no client authentication (Google);
 * - `client-token`: POST `client_id`, `client_secret`, `token=<refresh token>` (Box);
 * - `bearer-access`: POST with `Authorization: Bearer <access token>`, which also ends its refresh token (Dropbox).
 */
export type Revocation = 'none' | 'token' | 'client-token' | 'bearer-access';

export interface Provider {
  readonly id: ProviderId;
  readonly name: string;
  /** The endpoints when the owner set none; Microsoft's are built from its authority and tenant. */
  defaults(app: Pick<ProviderApp, 'authority' | 'tenant'>): Endpoints;
  /** Added to every authorize URL (what makes the provider hand out a refresh token). */
  readonly authorizeParams: Readonly<Record<string, string>>;
  /** Send a PKCE S256 challenge (only where the provider documents it for confidential clients). */
  readonly pkce: boolean;
  /** The account is named by an OpenID id_token (Microsoft); otherwise the broker keeps no account name. */
  readonly idToken: boolean;
  /** The token endpoint wants `scope` too (Microsoft v2.0). */
  readonly scopeAtTokenEndpoint: boolean;
  readonly refreshTokens: RefreshTokens;
  readonly revocation: Revocation;
  /** pCloud: the token endpoint is on the host the callback names in `hostname`, one of these. */
  readonly tokenHosts?: readonly string[];
  /** Where the owner removes the app's access at the provider by hand. */
  readonly accessUrl: string;
  /** A grant not refreshed for this many days ends at the provider (none: no such limit). */
  readonly idleDays?: number;
  /** The provider's token errors, read into the broker's three cases. */
  readonly judge: Judge;
  /** Said with a provider's "sign in again", given the connection's age in days, when the age explains it. */
  signInAgainNote?(ageDays: number): string | undefined;
  /** What the pages say about this provider, once. */
  readonly note?: string;
  /** The token response's `scope` lists what the user granted (granular consent): the login checks the service's scopes are there. */
  readonly grantedScopeChecked?: true;
  /** What to do when the code redemption brought no refresh token. */
  readonly noRefreshTokenHint?: string;
  /** The owner's fix for an `error` the provider sends back to the redirect URI, where it has a known cause. */
  readonly authorizeErrorHints?: Readonly<Record<string, string>>;
}

export interface Service {
  /** Duplicati's backend key, used in `?type=` and returned as `type` by /refresh. */
  readonly id: string;
  readonly name: string;
  readonly provider: Provider;
  /** What the backup needs. */
  readonly scopes: readonly string[];
  /** What the broker itself needs to name the account (`openid profile` give an id_token with oid). */
  readonly identityScopes: readonly string[];
  /** The Duplicati option that takes what the broker hands out. */
  readonly duplicatiOption: string;
}

const trimSlash = (s: string) => s.replace(/\/+$/, '');

export const MICROSOFT: Provider = {
  id: 'microsoft',
  name: 'Microsoft',
  defaults: ({ authority = 'https://login.microsoftonline.com', tenant = 'consumers' }) => ({
    authorizeUrl: `${trimSlash(authority)}/${encodeURIComponent(tenant)}/oauth2/v2.0/authorize`,
    tokenUrl: `${trimSlash(authority)}/${encodeURIComponent(tenant)}/oauth2/v2.0/token`,
  }),
  authorizeParams: { response_mode: 'query' },
  pkce: true,
  idToken: true,
  scopeAtTokenEndpoint: true,
  refreshTokens: 'rotating',
  revocation: 'none',
  accessUrl: 'https://account.microsoft.com/privacy',
  noRefreshTokenHint: 'Make sure the app has the offline_access permission, then connect again.',
  idleDays: 90,
  judge: judgeMicrosoft,
};

const GOOGLE: Provider = {
  id: 'google',
  name: 'Google',
  defaults: () => ({
    authorizeUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
    tokenUrl: 'https://oauth2.googleapis.com/token',
    revokeUrl: 'https://oauth2.googleapis.com/revoke',
  }),
  // Google hands out a refresh token only for offline access, and again only when consent is asked again.
  authorizeParams: { access_type: 'offline', prompt: 'consent' },
  pkce: true,
  idToken: false,
  scopeAtTokenEndpoint: false,
  refreshTokens: 'reusable',
  revocation: 'token',
  accessUrl: 'https://myaccount.google.com/permissions',
  grantedScopeChecked: true,
  idleDays: 182,
  judge: judgeOAuth('Google', { grant: 'the grant was revoked, has expired, or was not used for 6 months' }),
  signInAgainNote: (days) =>
    days >= 6 && days < 8
      ? 'It ended about 7 days after it was made: Google does that to every connection of an app whose consent screen is still in "Testing". Publish the app (Google Auth Platform → Audience → Publish app), then connect again.'
      : undefined,
  note: 'Revoking one Google connection ends every connection of the same Google account to this app.',
};

const DROPBOX: Provider = {
  id: 'dropbox',
  name: 'Dropbox',
  defaults: () => ({
    authorizeUrl: 'https://www.dropbox.com/oauth2/authorize',
    tokenUrl: 'https://api.dropboxapi.com/oauth2/token',
    revokeUrl: 'https://api.dropboxapi.com/2/auth/token/revoke',
  }),
  authorizeParams: { token_access_type: 'offline' },
  pkce: false,
  idToken: false,
  scopeAtTokenEndpoint: false,
  refreshTokens: 'reusable',
  revocation: 'bearer-access',
  accessUrl: 'https://www.dropbox.com/account/connected_apps',
  grantedScopeChecked: true,
  authorizeErrorHints: {
    invalid_scope:
      "The broker's owner must enable files.content.write, files.content.read, files.metadata.read and files.metadata.write on the Dropbox app's Permissions tab (and Submit), then connect again.",
  },
  judge: judgeOAuth('Dropbox', {
    client: {
      invalid_scope:
        "a scope the broker asks for is not enabled on the app's Permissions tab (files.content.write, files.content.read, files.metadata.read, files.metadata.write)",
    },
  }),
};

const BOX: Provider = {
  id: 'box',
  name: 'Box',
  defaults: () => ({
    authorizeUrl: 'https://account.box.com/api/oauth2/authorize',
    tokenUrl: 'https://api.box.com/oauth2/token',
    revokeUrl: 'https://api.box.com/oauth2/revoke',
  }),
  authorizeParams: {},
  pkce: false,
  idToken: false,
  scopeAtTokenEndpoint: false,
  refreshTokens: 'single-use',
  revocation: 'client-token',
  accessUrl: 'https://app.box.com/account/security',
  idleDays: 60,
  authorizeErrorHints: {
    unauthorized_client: 'The Box app must be a Platform App with "User Authentication (OAuth 2.0)"; that choice cannot be changed, so create a new app.',
    invalid_scope: 'Enable "Read and write all files and folders stored in Box" under the Box app\'s Application Scopes.',
  },
  judge: judgeOAuth('Box', {
    grant: 'the grant was revoked, or was not used for 60 days',
    client: { unauthorized_client: 'the app is not a "User Authentication (OAuth 2.0)" app' },
  }),
};

const PCLOUD: Provider = {
  id: 'pcloud',
  name: 'pCloud',
  defaults: () => ({ authorizeUrl: 'https://my.pcloud.com/oauth2/authorize', tokenUrl: 'https://api.pcloud.com/oauth2_token' }),
  authorizeParams: {},
  pkce: false,
  idToken: false,
  scopeAtTokenEndpoint: false,
  refreshTokens: 'none',
  revocation: 'none',
  tokenHosts: ['api.pcloud.com', 'eapi.pcloud.com'],
  accessUrl: 'https://my.pcloud.com/#page=settings&settings=tab-apps',
  judge: judgePcloud,
  note: "pCloud's access token does not expire and Duplicati's pCloud backend takes it directly, so the broker shows it once and keeps nothing.",
};

export const PROVIDERS: Readonly<Record<ProviderId, Provider>> = { microsoft: MICROSOFT, google: GOOGLE, dropbox: DROPBOX, box: BOX, pcloud: PCLOUD };
export const PROVIDER_IDS = Object.keys(PROVIDERS) as ProviderId[];

const MICROSOFT_IDENTITY = ['openid', 'profile'] as const;

export const SERVICES: readonly Service[] = [
  {
    id: 'onedrivev2',
    name: 'Microsoft OneDrive',
    provider: MICROSOFT,
    scopes: ['offline_access', 'Files.ReadWrite'],
    identityScopes: MICROSOFT_IDENTITY,
    duplicatiOption: '--authid',
  },
  {
    id: 'sharepoint',
    name: 'Microsoft SharePoint',
    provider: MICROSOFT,
    scopes: ['offline_access', 'Files.ReadWrite.All'],
    identityScopes: MICROSOFT_IDENTITY,
    duplicatiOption: '--authid',
  },
  {
    id: 'msgroup',
    name: 'Microsoft Office 365 Group',
    provider: MICROSOFT,
    scopes: ['offline_access', 'Files.ReadWrite.All', 'Group.Read.All'],
    identityScopes: MICROSOFT_IDENTITY,
    duplicatiOption: '--authid',
  },
  {
    id: 'googledrive',
    name: 'Google Drive (files it created)',
    provider: GOOGLE,
    scopes: ['https://www.googleapis.com/auth/drive.file'],
    identityScopes: [],
    duplicatiOption: '--authid',
  },
  {
    id: 'googledocs',
    name: 'Google Drive (full access)',
    provider: GOOGLE,
    scopes: ['https://www.googleapis.com/auth/drive'],
    identityScopes: [],
    duplicatiOption: '--authid',
  },
  {
    id: 'gcs',
    name: 'Google Cloud Storage',
    provider: GOOGLE,
    scopes: ['https://www.googleapis.com/auth/devstorage.read_write'],
    identityScopes: [],
    duplicatiOption: '--authid',
  },
  {
    id: 'dropbox',
    name: 'Dropbox',
    provider: DROPBOX,
    scopes: ['files.content.write', 'files.content.read', 'files.metadata.read', 'files.metadata.write'],
    identityScopes: [],
    duplicatiOption: '--authid',
  },
  { id: 'box.com', name: 'Box', provider: BOX, scopes: ['root_readwrite'], identityScopes: [], duplicatiOption: '--authid' },
  { id: 'pcloud', name: 'pCloud', provider: PCLOUD, scopes: [], identityScopes: [], duplicatiOption: '--authid (the access token itself, no --oauth-url)' },
];

export const DEFAULT_SERVICE_ID = 'onedrivev2';

export function findService(id: string | null | undefined): Service | undefined {
  // A loop, not find: `broker list` would compile that builtin for this alone (see cli/list-output.ts).
  for (const s of SERVICES) if (s.id === id) return s;
  return undefined;
}

export function scopeString(s: Service): string {
  return [...s.scopes, ...s.identityScopes].join(' ');
}

/** The app's endpoints: what the owner set, else the provider's defaults. */
export function endpointsOf(provider: Provider, app: ProviderApp): Endpoints {
  const d = provider.defaults(app);
  return { authorizeUrl: app.authorizeUrl ?? d.authorizeUrl, tokenUrl: app.tokenUrl ?? d.tokenUrl, revokeUrl: app.revokeUrl ?? d.revokeUrl };
}
