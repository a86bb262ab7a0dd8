/**
 * The time-based notifications, checked once a day (and at start): the app
 * secrets' expiry (30, 7 and 1 days before, and on the day), and connections
 * within IDLE_WARNING_BEFORE_DAYS of their provider's idle limit (Microsoft's 90
 * days: after 60 unused), with the date that limit ends them.
 * The clock is injected: tests move it, nothing waits.
 */
import { DAY_MS, IDLE_WARNING_BEFORE_DAYS, idleExpiresAt, secretDaysLeft } from '../broker/lifecycle.ts';
import type { ConnectionInfo } from '../store/store.ts';
import { type AppRef, connectionIdle, secretExpiring } from './events.ts';
import type { Notifier } from './notifier.ts';

export const SECRET_THRESHOLDS_DAYS = [30, 7, 1, 0] as const;
export const CHECK_EVERY_MS = DAY_MS;

export interface ScheduleOptions {
  notifier: Notifier;
  now: () => number;
  /** Every app with its secret's expiry date, read at each check (a reloaded settings file). */
  apps: () => readonly (AppRef & { secretExpires?: string })[];
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
  for (const app of o.apps()) {
    const left = secretDaysLeft(app.secretExpires, now);
    // Calendar days until the date (the secret ends at its start, UTC): 0 on the day itself.
    const days = left === null ? null : left + 1;
    const threshold = days === null ? null : secretThreshold(days);
    if (app.secretExpires && days !== null && threshold !== null) o.notifier.send(secretExpiring(app.secretExpires, threshold, days, now, app));
  }
  for (const c of await o.connections()) {
    if (c.state !== 'active') continue;
    const lastUse = c.lastRefreshAt ?? c.createdAt;
    const endsAt = idleExpiresAt(c);
    // No idle limit at this provider (Dropbox, pCloud), or not yet close to it.
    if (endsAt === null || now < endsAt - IDLE_WARNING_BEFORE_DAYS * DAY_MS) continue;
    const idleDays = Math.floor((now - lastUse) / DAY_MS);
    const ends = new Date(endsAt).toISOString().slice(0, 10);
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
