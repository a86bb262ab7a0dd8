/** The account a system unit runs as. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Account {
  name: string;
  uid: number;
  home: string;
  group?: string;
}

/** getent (NSS: LDAP, systemd-homed…), else /etc/passwd and /etc/group. */
export function lookupUser(name: string): Account | null {
  const entry = (db: string, key: string): string[] | null => {
    const r = spawnSync('getent', [db, key], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    if (!r.error && r.status === 0 && r.stdout.trim()) return r.stdout.trim().split('\n')[0]!.split(':');
    if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ENOENT') return null;
    try {
      const line = readFileSync(`/etc/${db}`, 'utf8')
        .split('\n')
        .map((l) => l.split(':'))
        .find((f) => (db === 'group' && /^\d+$/.test(key) ? f[2] === key : f[0] === key));
      return line ?? null;
    } catch {
      return null;
    }
  };
  const pw = entry('passwd', name);
  if (!pw || pw.length < 7) return null;
  const group = entry('group', pw[3]!)?.[0];
  return { name: pw[0]!, uid: Number(pw[2]), home: pw[5]!, group };
}
