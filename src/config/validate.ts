/** The checks of single values, each answering why a value is wrong (null: it is right), as the end of a sentence that starts with the option's name. */
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function validateClientId(v: string): string | null {
  return GUID.test(v) ? null : 'must be the Application (client) ID, a GUID like 00000000-0000-0000-0000-000000000000';
}

export function validateClientSecret(v: string): string | null {
  if (!v) return 'is empty';
  // The portal shows both the secret's ID (a GUID) and its Value; only the Value works.
  if (GUID.test(v.trim())) return "looks like the secret's ID (a GUID); copy the secret's Value instead";
  if (v.length > 1024 || /[\r\n]/.test(v)) return 'must be one line';
  return null;
}

export function validateTenant(v: string): string | null {
  if (['common', 'organizations', 'consumers'].includes(v) || GUID.test(v) || /^[a-z0-9][a-z0-9.-]*\.[a-z]{2,}$/i.test(v)) return null;
  return 'must be consumers, common, organizations, a tenant id (GUID) or a tenant domain';
}

/** Hosts Microsoft accepts in http:// redirect URIs (IPv6 [::1] is not supported there). */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1']);

/** A public URL Microsoft refuses as a redirect base (http:// elsewhere than localhost), and on which AuthIDs cross the network readable. */
export function isPlainHttpBeyondLocalhost(u: URL): boolean {
  return u.protocol === 'http:' && !LOOPBACK_HOSTS.has(u.hostname);
}

export function validateHttpUrl(v: string, what: 'public-url' | 'authority', opts: { allowInsecureHttp?: boolean } = {}): string | null {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must start with https:// (or http:// for localhost)';
  if (u.search || u.hash) return 'must not have a query or fragment';
  if (u.username || u.password) return 'must not contain a user name or password';
  if (what === 'public-url' && u.pathname !== '/' && u.pathname !== '') {
    return 'must be the root of a host (Duplicati drops the path when it builds its login link)';
  }
  // The app secret is sent there: in clear only to a test provider on this machine.
  if (what === 'authority' && u.protocol === 'http:' && !LOOPBACK_HOSTS.has(u.hostname) && !/^127\./.test(u.hostname)) {
    return 'must use https:// (the app secret is sent there); http:// only for a local test provider on localhost or 127.x.x.x';
  }
  // The redirect URI is {public-url}/logged-in, and Microsoft refuses http:// ones except on localhost.
  if (what === 'public-url' && isPlainHttpBeyondLocalhost(u) && !opts.allowInsecureHttp) {
    return 'must use HTTPS: Microsoft accepts http:// redirect URIs only for localhost (localhost and 127.0.0.1 are allowed); use an https:// URL (e.g. behind a reverse proxy), or keep http://localhost:PORT and connect with `broker connect` or an SSH tunnel';
  }
  return null;
}

export function validateListen(v: string): string | null {
  const m = /^(\[[0-9a-f:]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(v);
  if (!m || Number(m[2]) > 65535) return 'must be HOST:PORT, like 127.0.0.1:8080';
  return null;
}

export function validateOrigin(v: string): string | null {
  try {
    const u = new URL(v);
    if (u.origin !== v.replace(/\/$/, '')) return 'must be an origin like http://localhost:8200 (no path)';
    return null;
  } catch {
    return 'is not an origin like http://localhost:8200';
  }
}

export function normaliseUrl(v: string): string {
  return v.trim().replace(/\/+$/, '');
}

export function validateDate(v: string): string | null {
  return /^\d{4}-\d{2}-\d{2}$/.test(v) ? null : 'must be a date YYYY-MM-DD';
}

/** A PostgreSQL URL: postgres:// or postgresql://, with a host and a database. */
export function validateDatabaseUrl(v: string): string | null {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return 'must be a URL like postgres://USER@HOST:5432/DB';
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') return 'must start with postgres://';
  if (!u.hostname) return 'must name a host';
  if (u.pathname.length <= 1) return 'must name a database (postgres://USER@HOST:5432/DB)';
  const mode = u.searchParams.get('sslmode');
  if (mode && !['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'].includes(mode)) {
    return 'has an sslmode that is not disable, allow, prefer, require, verify-ca or verify-full';
  }
  return null;
}
