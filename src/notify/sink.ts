/**
 * From what the broker reports (BrokerEvent, src/broker/context.ts) to the
 * notifications the owner gets: which events are sent (created and revoked only
 * with --notify-all), their causes, and the outage watch over upstream calls.
 */
import type { BrokerEvent, EventSink } from '../broker/context.ts';
import { appRejected, type Cause, connectionCreated, connectionRevoked, loginRequired, upstreamOutage, upstreamRecovered } from './events.ts';
import type { Notifier } from './notifier.ts';

/** Transient failures in a row, with no success between, for this long make an outage. */
export const OUTAGE_AFTER_MS = 10 * 60_000;

export interface SinkOptions {
  notifier: Notifier;
  now: () => number;
  /** Read at each event: a reloaded settings file changes them. */
  /** `app(provider)`: that provider's app as the owner fixes it (see appFingerprint). */
  settings: () => { publicUrl: string; app: (provider: string) => string; notifyAll: boolean };
}

export class NotifySink implements EventSink {
  /** Per provider: when the failures began (no success since), and whether the outage was sent. */
  private readonly failing = new Map<string, { since: number; reported: boolean }>();

  constructor(private readonly o: SinkOptions) {}

  report(e: BrokerEvent): void {
    try {
      const cause = this.causeOf(e);
      if (cause) this.o.notifier.send(cause);
    } catch {
      // Runs inside a request: a notification problem is never the request's problem.
    }
  }

  private causeOf(e: BrokerEvent): Cause | undefined {
    const now = this.o.now();
    const s = this.o.settings();
    switch (e.type) {
      case 'connection.login_required':
        return loginRequired(e.keyid, e.service, e.reason, s.publicUrl, now);
      case 'app.rejected':
        return appRejected(e.reason, s.app(e.provider), now, e.provider);
      case 'connection.created':
        return s.notifyAll ? connectionCreated(e.keyid, e.service, now) : undefined;
      case 'connection.revoked':
        return s.notifyAll ? connectionRevoked(e.keyid, now) : undefined;
      case 'upstream.call':
        return this.watch(e.provider, e.outcome === 'ok', e.outcome === 'upstream_error' || e.outcome === 'upstream_timeout', now);
    }
  }

  /** The hot path: one map look-up per call to the provider. */
  private watch(provider: string, ok: boolean, transient: boolean, now: number): Cause | undefined {
    const state = this.failing.get(provider);
    if (ok) {
      if (!state) return undefined;
      this.failing.delete(provider);
      return state.reported ? upstreamRecovered(provider, state.since, now) : undefined;
    }
    // A non-transient answer (a rejected grant) means the provider is up.
    if (!transient) {
      if (state && !state.reported) this.failing.delete(provider);
      return undefined;
    }
    if (!state) {
      this.failing.set(provider, { since: now, reported: false });
      return undefined;
    }
    if (state.reported || now - state.since < OUTAGE_AFTER_MS) return undefined;
    state.reported = true;
    return upstreamOutage(provider, state.since, now);
  }
}
