/** The accounts behind login names: any name signs in, with Entra-shaped ids. */
import { createHash } from 'node:crypto';
import { CONSUMER_TENANT_ID } from './config.ts';

export interface AccountInfo {
  sub: string;
  oid: string;
  name: string;
  preferredUsername: string;
}

function hashHex(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

function normalizeLogin(username: string): string {
  return username.trim().toLowerCase() || 'testuser';
}

/** Formats 32 hex digits as a GUID. */
function guid(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** The account a login name maps to, stable per name, tenant (`tid`) and app. */
export function accountInfo(username: string, tid: string, clientId: string): AccountInfo {
  const login = normalizeLogin(username);
  const preferredUsername = login.includes('@') ? login : `${login}@outlook.com`;
  // MSA object ids start with 16 zero hex digits; organisational ones are
  // full random-looking GUIDs. Mimic whichever tenant we pose as.
  const oidHex = hashHex('oid', tid, preferredUsername);
  const oid = tid === CONSUMER_TENANT_ID ? guid(`0000000000000000${oidHex.slice(0, 16)}`) : guid(oidHex);
  // Entra's `sub` is pairwise (per app), unlike `oid`.
  const sub = createHash('sha256').update(`sub\u0000${clientId}\u0000${oid}`).digest('base64url');
  return { sub, oid, name: login.split('@')[0] ?? login, preferredUsername };
}
