/** Notifications in a running `serve`: the notifier, the broker's event sink, the daily checks; re-aimed on settings reload. */
import type { Broker } from '../broker/broker.ts';
import type { Logger } from '../broker/context.ts';
import type { Settings } from '../config/settings.ts';
import type { Fetch } from '../oauth/token-endpoint.ts';
import { Notifier } from './notifier.ts';
import { startDailyChecks } from './scheduler.ts';
import { NotifySink } from './sink.ts';
import { targetsFrom } from './targets.ts';

export type NotifySettings = Pick<Settings, 'notifyUrls' | 'notifyFormat' | 'notifyCommand' | 'notifyAll'>;

export interface Notifications {
  notifier: Notifier;
  /** New targets and --notify-all from a reloaded settings file. */
  update(s: NotifySettings): void;
  stop(): void;
}

export function startNotifications(broker: Broker, s: NotifySettings, deps: { fetch: Fetch; now: () => number; log: Logger }): Notifications {
  const { ctx } = broker;
  let current = s;
  const notifier = new Notifier({
    targets: targetsFrom(s, deps.fetch),
    now: deps.now,
    // Read per delivery: the store may be swapped by a test, and the claim is how instances share the work.
    claim: (key, now) => ctx.store.claimNotification(key, now),
    // Metrics are attached after the server starts; read them when counting.
    observe: (event, outcome) => ctx.observer?.notification?.(event, outcome),
    log: deps.log,
  });
  const targets = notifier.targetLabels();
  if (targets.length) deps.log.info('notify.targets', { targets: targets.join(',') });
  ctx.events = new NotifySink({
    notifier,
    now: deps.now,
    settings: () => ({ publicUrl: ctx.config.publicUrl, clientId: ctx.config.clientId, notifyAll: Boolean(current.notifyAll) }),
  });
  const checks = startDailyChecks({ notifier, now: deps.now, secretExpires: () => ctx.config.secretExpires, connections: () => ctx.store.list() }, () =>
    deps.log.warn('notify.check_failed'),
  );
  return {
    notifier,
    update(next) {
      current = next;
      const had = notifier.targetLabels().length;
      notifier.setTargets(targetsFrom(next, deps.fetch));
      // The first target: what is already due is said now, not within a day.
      if (!had && notifier.targetLabels().length) checks.run();
    },
    stop: () => checks.stop(),
  };
}
