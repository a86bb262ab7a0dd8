import { appSecretWarnings, connectionWarnings, DAY_MS, idleExpiresAt } from '../broker/lifecycle.ts';
import { otherApps, readSettings, type Settings } from '../config/settings.ts';
import { PROVIDERS, SERVICES } from '../oauth/providers.ts';
import type { Io } from './io.ts';
import { sayWarning } from './voice.ts';
import type { ConnectionInfo } from '../store/types.ts';
import { openStore } from './store-file.ts';

export async function listCommand(home: string, io: Io, opts: { json?: boolean }, now: () => number = Date.now): Promise<void> {
  const store = await openStore(home, io.env);
  let rows: ConnectionInfo[];
  try {
    rows = await store.list();
  } finally {
    await store.close();
  }
  const t = now();
  const settings = readSettings(home);
  // Warnings go to stderr so that `--json` output stays parseable.
  for (const w of appSecretWarnings(settings, t)) sayWarning(io, w);
  for (const c of rows) for (const w of connectionWarnings(c, t)) sayWarning(io, `${c.keyid}: ${w}`);
  if (opts.json) {
    io.out(
      JSON.stringify(
        rows.map((c) => ({
          keyid: c.keyid,
          service: c.service,
          created_at: iso(c.createdAt),
          last_refresh_at: iso(c.lastRefreshAt),
          last_used_at: iso(c.lastUsedAt),
          state: c.state,
          idle_expires_at: c.state === 'active' ? iso(idleExpiresAt(c)) : null,
        })),
        null,
        2,
      ),
    );
    return;
  }
  io.out(`Apps: ${appsLine(settings)}`);
  if (rows.length === 0) {
    io.out('No connections yet. Run `broker serve` and open its start page to connect one.');
    return;
  }
  const table = [
    ['KEYID', 'SERVICE', 'STATE', 'CREATED', 'LAST REFRESH', 'LAST USE', 'IDLE EXPIRY'],
    ...rows.map((c) => [
      c.keyid,
      c.service,
      c.state,
      day(c.createdAt),
      c.lastRefreshAt ? day(c.lastRefreshAt) : 'never',
      c.lastUsedAt ? day(c.lastUsedAt) : 'never',
      c.state === 'active' ? idleIn(idleExpiresAt(c), t) : '-',
    ]),
  ];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table)
    io.out(
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}

/** One entry per provider's app: its name, client id (not a secret) and services; the secrets are never shown. */
function appsLine(s: Partial<Settings>): string {
  const apps = [
    ...(s.clientId ? [{ id: 'microsoft' as const, clientId: s.clientId, expires: s.secretExpires }] : []),
    ...otherApps(s).map((id) => ({ id, clientId: s.providers![id]!.clientId, expires: s.providers![id]!.secretExpires })),
  ];
  if (apps.length === 0) return 'none (run `broker init`)';
  return apps
    .map((a) => {
      const services = SERVICES.filter((x) => x.provider.id === a.id)
        .map((x) => x.id)
        .join(', ');
      return `${PROVIDERS[a.id].name} (client id ${a.clientId}${a.expires ? `, secret expires ${a.expires}` : ''}; ${services})`;
    })
    .join('; ');
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
