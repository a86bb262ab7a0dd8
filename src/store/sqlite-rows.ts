import type { ConnectionInfo, ConnectionState } from './types.ts';

/** A row of `connections` as bun:sqlite returns it. */
export interface Row {
  keyid: string;
  service: string;
  state: ConnectionState;
  check_tag: Uint8Array;
  sealed: Uint8Array | null;
  version: number;
  created_at: number;
  last_refresh_at: number | null;
  last_used_at: number | null;
  state_changed_at: number | null;
  state_reason: string | null;
}

export const INFO_COLUMNS = 'keyid, service, state, version, created_at, last_refresh_at, last_used_at, state_changed_at, state_reason';

/** Every connection, oldest first: what `broker list` shows. */
export const LIST_SQL = `SELECT ${INFO_COLUMNS} FROM connections ORDER BY created_at, keyid`;

export function toInfo(r: Omit<Row, 'check_tag' | 'sealed'>): ConnectionInfo {
  return {
    keyid: r.keyid,
    service: r.service,
    state: r.state,
    version: r.version,
    createdAt: r.created_at,
    lastRefreshAt: r.last_refresh_at,
    lastUsedAt: r.last_used_at,
    stateChangedAt: r.state_changed_at,
    stateReason: r.state_reason,
  };
}
