import { appSecretWarnings, connectionWarnings, DAY_MS, idleExpiresAt } from '../broker/lifecycle.ts';
import { otherApps } from '../config/apps.ts';
import type { Settings } from '../config/settings.ts';
import { PROVIDERS, type ProviderId, SERVICES } from '../oauth/providers.ts';
import type { ConnectionInfo } from '../store/types.ts';
import type { Io } from './io.ts';
import { sayWarning } from './voice.ts';

/**
 * What `broker list` prints, from what it read: the connections and the settings
 * (for the apps line and the secret warnings). Warnings go to stderr so that
 * `--json` output stays parseable. No secrets: the settings' are never shown.
 *
 * Plain loops, here and in what it calls (otherApps, findService), not map,
 * filter or find: `list` lives a few milliseconds, and the first call of each of
 * those builtins compiles it (map alone about 0.1 ms); with them, printing ten
 * rows took 0.4 ms longer.
 */
export function printList(rows: readonly ConnectionInfo[], settings: Partial<Settings>, io: Io, opts: { json?: boolean }, t: number): void {
  for (const w of appSecretWarnings(settings, t)) sayWarning(io, w);
  for (const c of rows) for (const w of connectionWarnings(c, t)) sayWarning(io, `${c.keyid}: ${w}`);
  if (opts.json) {
    const out = [];
    for (const c of rows) {
      out.push({
        keyid: c.keyid,
        service: c.service,
        created_at: iso(c.createdAt),
        last_refresh_at: iso(c.lastRefreshAt),
        last_used_at: iso(c.lastUsedAt),
        state: c.state,
        idle_expires_at: c.state === 'active' ? iso(idleExpiresAt(c)) : null,
      });
    }
    io.out(JSON.stringify(out, null, 2));
    return;
  }
  io.out(`Apps: ${appsLine(settings)}`);
  if (rows.length === 0) {
    io.out('No connections yet. Run `broker serve` and open its start page to connect one.');
    return;
  }
  const table = [['KEYID', 'SERVICE', 'STATE', 'CREATED', 'LAST REFRESH', 'LAST USE', 'IDLE EXPIRY']];
  for (const c of rows) {
    table.push([
      c.keyid,
      c.service,
      c.state,
      day(c.createdAt),
      c.lastRefreshAt ? day(c.lastRefreshAt) : 'never',
      c.lastUsedAt ? day(c.lastUsedAt) : 'never',
      c.state === 'active' ? idleIn(idleExpiresAt(c), t) : '-',
    ]);
  }
  const widths: number[] = [];
  for (const r of table) for (let i = 0; i < r.length; i++) widths[i] = Math.max(widths[i] ?? 0, r[i]!.length);
  for (const r of table) {
    let line = r[0]!.padEnd(widths[0]!);
    for (let i = 1; i < r.length; i++) line += `  ${r[i]!.padEnd(widths[i]!)}`;
    io.out(line.trimEnd());
  }
}

/** One entry per provider's app: its name, client id (not a secret) and services; the secrets are never shown. */
function appsLine(s: Partial<Settings>): string {
  const apps: { id: ProviderId; clientId: string; expires?: string }[] = s.clientId
    ? [{ id: 'microsoft', clientId: s.clientId, expires: s.secretExpires }]
    : [];
  for (const id of otherApps(s)) apps.push({ id, clientId: s.providers![id]!.clientId, expires: s.providers![id]!.secretExpires });
  if (apps.length === 0) return 'none (run `broker init`)';
  const entries: string[] = [];
  for (const a of apps) {
    const services: string[] = [];
    for (const x of SERVICES) if (x.provider.id === a.id) services.push(x.id);
    entries.push(`${PROVIDERS[a.id].name} (client id ${a.clientId}${a.expires ? `, secret expires ${a.expires}` : ''}; ${services.join(', ')})`);
  }
  return entries.join('; ');
}

function idleIn(ends: number | null, t: number): string {
  return ends === null ? 'none' : `in ${Math.max(0, Math.floor((ends - t) / DAY_MS))} days`;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}
