/**
 * The time-based notifications, checked once a day (and at start): the app
 * secret's expiry (30, 7 and 1 days before, and on the day), and connections
 * unused for IDLE_WARNING_DAYS, with the date the provider's idle limit ends them.
 * The clock is injected: tests move it, nothing waits.
 */
import { DAY_MS, IDLE_WARNING_DAYS, idleExpiresAt, secretDaysLeft } from '../broker/lifecycle.ts';
import type { ConnectionInfo } from '../store/store.ts';
import { connectionIdle, secretExpiring } from './events.ts';
import type { Notifier } from './notifier.ts';

export const SECRET_THRESHOLDS_DAYS = [30, 7, 1, 0] as const;
export const CHECK_EVERY_MS = DAY_MS;

export interface ScheduleOptions {
  notifier: Notifier;
  now: () => number;
  /** Read at each check (a reloaded settings file). */
  secretExpires: () => string | undefined;
  /** The connections, public facts only (sync or async store). */
  connections: () => readonly ConnectionInfo[] | Promise<readonly ConnectionInfo[]>;
}

/** The smallest mark reached: 10 calendar days left → 30; on the day or after → 0. */
export function secretThreshold(daysLeft: number): number | null {
  let hit: number | null = null;
  for (const t of SECRET_THRESHOLDS_DAYS) if (daysLeft <= t) hit = t;
  return hit;
}

export async function dailyCheck(o: ScheduleOptions): Promise<void> {
  // Without a target there is no one to tell, and no reason to read every connection.
  if (!o.notifier.targetLabels().length) return;
  const now = o.now();
  const expires = o.secretExpires();
  const left = secretDaysLeft(expires, now);
  // Calendar days until the date (the secret ends at its start, UTC): 0 on the day itself.
  const days = left === null ? null : left + 1;
  const threshold = days === null ? null : secretThreshold(days);
  if (expires && days !== null && threshold !== null) o.notifier.send(secretExpiring(expires, threshold, days, now));
  for (const c of await o.connections()) {
    if (c.state !== 'active') continue;
    const lastUse = c.lastRefreshAt ?? c.createdAt;
    const idleDays = Math.floor((now - lastUse) / DAY_MS);
    if (idleDays < IDLE_WARNING_DAYS) continue;
    const ends = new Date(idleExpiresAt(c)).toISOString().slice(0, 10);
    o.notifier.send(connectionIdle(c.keyid, c.service, idleDays, lastUse, ends, now));
  }
}

/** A moment after start (not in the way of start-up), then every CHECK_EVERY_MS. */
export const FIRST_CHECK_AFTER_MS = 5_000;

/** Starts the checks; `run` checks at once (new targets), `stop` ends them. */
export function startDailyChecks(o: ScheduleOptions, onError: (e: unknown) => void): { run(): void; stop(): void } {
  const run = () => void dailyCheck(o).catch(onError);
  const first = setTimeout(run, FIRST_CHECK_AFTER_MS);
  const timer = setInterval(run, CHECK_EVERY_MS);
  first.unref();
  timer.unref();
  return {
    run,
    stop() {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
