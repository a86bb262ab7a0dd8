/** Notifications in a running `serve`: the notifier, the broker's event sink, the daily checks; re-aimed on settings reload. */
import type { Broker } from '../broker/broker.ts';
import type { BrokerConfig, Logger } from '../broker/context.ts';
import type { Settings } from '../config/settings.ts';
import type { Fetch } from '../oauth/token-endpoint.ts';
import { MICROSOFT, PROVIDERS, type ProviderId } from '../oauth/providers.ts';
import type { AppRef } from './events.ts';
import { Notifier } from './notifier.ts';
import { startDailyChecks } from './scheduler.ts';
import { NotifySink } from './sink.ts';
import { targetsFrom } from './targets.ts';

/**
 * The app registration as the owner fixes it: the client id, tenant, and 48 bits of
 * a SHA-256 of the secret. Only ever part of a key in the store (never sent): a new
 * secret makes a rejection a new cause. 48 bits of a hash say nothing useful about
 * a secret of 200+ random bits.
 */
export function appFingerprint(c: { clientId: string; clientSecret: string; tenant?: string }): string {
  const h = new Bun.CryptoHasher('sha256').update(c.clientSecret).digest('hex').slice(0, 12);
  return `${c.clientId}:${c.tenant ?? ''}:${h}`;
}

/** The fingerprint of a provider's app; Microsoft's as before there were other providers. */
function providerFingerprint(config: BrokerConfig, provider: string): string {
  if (provider === 'microsoft') return appFingerprint(config);
  const app = config.providers?.[provider as Exclude<ProviderId, 'microsoft'>];
  return `${provider}:${app ? appFingerprint(app) : 'none'}`;
}

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
    settings: () => ({ publicUrl: ctx.config.publicUrl, app: (provider) => providerFingerprint(ctx.config, provider), notifyAll: Boolean(current.notifyAll) }),
  });
  const checks = startDailyChecks({ notifier, now: deps.now, apps: () => appsOf(ctx.config), connections: () => ctx.store.list() }, () =>
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

/** Every app the broker holds, with its secret's expiry: Microsoft's, then each other provider's. */
function appsOf(config: BrokerConfig): (AppRef & { secretExpires?: string })[] {
  const apps: (AppRef & { secretExpires?: string })[] = [];
  if (config.clientId) apps.push({ id: 'microsoft', name: MICROSOFT.name, secretExpires: config.secretExpires });
  for (const [id, app] of Object.entries(config.providers ?? {})) {
    if (app) apps.push({ id, name: PROVIDERS[id as ProviderId]?.name ?? id, secretExpires: app.secretExpires });
  }
  return apps;
}
