/**
 * Providers and services as data, so that another provider is an entry, not a
 * code path. A *provider* is an identity platform (endpoints, quirks); a *service*
 * is what Duplicati calls a backend type (`?type=`): a provider plus scopes.
 */
export interface Provider {
  readonly id: string;
  readonly name: string;
  authorizeUrl(authority: string, tenant: string): string;
  tokenUrl(authority: string, tenant: string): string;
  /** Where a user removes the app's access, since Microsoft has no revocation endpoint. */
  readonly consentManagementUrl: string;
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
}

const trimSlash = (s: string) => s.replace(/\/+$/, '');

export const MICROSOFT: Provider = {
  id: 'microsoft',
  name: 'Microsoft',
  authorizeUrl: (authority, tenant) => `${trimSlash(authority)}/${encodeURIComponent(tenant)}/oauth2/v2.0/authorize`,
  tokenUrl: (authority, tenant) => `${trimSlash(authority)}/${encodeURIComponent(tenant)}/oauth2/v2.0/token`,
  consentManagementUrl: 'https://account.microsoft.com/privacy',
};

const MICROSOFT_IDENTITY = ['openid', 'profile'] as const;

export const SERVICES: readonly Service[] = [
  {
    id: 'onedrivev2',
    name: 'Microsoft OneDrive',
    provider: MICROSOFT,
    scopes: ['offline_access', 'Files.ReadWrite'],
    identityScopes: MICROSOFT_IDENTITY,
  },
  {
    id: 'sharepoint',
    name: 'Microsoft SharePoint',
    provider: MICROSOFT,
    scopes: ['offline_access', 'Files.ReadWrite.All'],
    identityScopes: MICROSOFT_IDENTITY,
  },
  {
    id: 'msgroup',
    name: 'Microsoft Office 365 Group',
    provider: MICROSOFT,
    scopes: ['offline_access', 'Files.ReadWrite.All', 'Group.Read.All'],
    identityScopes: MICROSOFT_IDENTITY,
  },
];

export const DEFAULT_SERVICE_ID = 'onedrivev2';

export function findService(id: string | null | undefined): Service | undefined {
  return SERVICES.find((s) => s.id === id);
}

export function scopeString(s: Service): string {
  return [...s.scopes, ...s.identityScopes].join(' ');
}
