import { appSecretWarnings, connectionWarnings, idleExpiresAt } from '../../broker/lifecycle.ts';
import type { Deps, Exchange } from '../exchange.ts';
import { authIdFrom, missingAuthId, NO_FORM } from '../request.ts';
import { json } from '../respond.ts';

/** GET /status: what the holder of an authid may know about its connection, including the sealed account name. */
export async function status(x: Exchange, { broker, now }: Deps): Promise<Response> {
  const authid = authIdFrom(x.req, () => x.url, NO_FORM);
  if (!authid) throw missingAuthId('Send it in the X-AuthID header.');
  const { id, keys, record } = await broker.tokens.authenticate(authid, x.client.address);
  x.keyid = id.keyid;
  const grant = await broker.tokens.open(keys, id.keyid);
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return json({
    keyid: record.keyid,
    service: record.service,
    state: record.state,
    created_at: iso(record.createdAt),
    last_refresh_at: iso(record.lastRefreshAt),
    last_used_at: iso(record.lastUsedAt),
    idle_expires_at: record.state === 'active' ? iso(idleExpiresAt(record)) : null,
    account: grant ? { username: grant.account.username ?? null, name: grant.account.name ?? null, tenant_id: grant.account.tid ?? null } : null,
    warnings: connectionWarnings(record, now()),
  });
}

/** GET /healthz: liveness and version, and what the owner should fix; no secrets. */
export function healthz(_x: Exchange, { broker, now, version }: Deps): Response {
  const warnings: string[] = [];
  warnings.push(...appSecretWarnings(broker.ctx.config, now()));
  const unsaved = broker.tokens.unsavedCount();
  if (unsaved) {
    warnings.push(
      `${unsaved === 1 ? "1 connection's newest refresh token is" : `${unsaved} connections' newest refresh tokens are`} held only in memory (the store could not be written): make BROKER_HOME writable and do not restart the broker until the next request of each saves it.`,
    );
  }
  return json({ status: 'ok', version, warnings });
}
