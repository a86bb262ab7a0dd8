import type { OtherProviderId, Settings } from './settings.ts';

/** The providers other than Microsoft with an app in these settings. */
export function otherApps(s: Partial<Settings>): OtherProviderId[] {
  // A loop, not filter and map: see printList (cli/list-output.ts).
  const ids: OtherProviderId[] = [];
  for (const [id, a] of Object.entries(s.providers ?? {})) if (a && typeof a === 'object') ids.push(id as OtherProviderId);
  return ids;
}
