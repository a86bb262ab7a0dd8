import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from './store/store.ts';

/**
 * Prometheus metrics, via prom-client: the exposition format has enough corners
 * (escaping, histogram buckets, HELP/TYPE lines) that the maintained library is
 * worth its two small dependencies. Labels carry routes, statuses and outcomes,
 * never a keyid: a label per connection would grow without bound.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'status'>;
  private readonly refreshes: Counter<'outcome'>;
  private readonly upstream: Histogram<'outcome'>;
  private readonly notifications: Counter<'event' | 'outcome'>;

  constructor(store: Store) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'broker_http_requests_total', help: 'HTTP requests by route and status.', labelNames: ['route', 'status'], registers });
    this.refreshes = new Counter({
      name: 'broker_refresh_total',
      help: 'Token requests by outcome: cache_hit, refreshed, stale_served, login_required, app_misconfigured, upstream_error, rejected.',
      labelNames: ['outcome'],
      registers,
    });
    this.upstream = new Histogram({
      name: 'broker_upstream_request_duration_seconds',
      help: "Latency of calls to Microsoft's token endpoint.",
      labelNames: ['outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20],
      registers,
    });
    this.notifications = new Counter({
      name: 'broker_notifications_total',
      help: 'Notification deliveries by event and outcome: sent, retry, gave_up, dropped.',
      labelNames: ['event', 'outcome'],
      registers,
    });
    new Gauge({
      name: 'broker_connections',
      help: 'Connections in the store by state.',
      labelNames: ['state'],
      registers,
      async collect() {
        const counts = { active: 0, login_required: 0, revoked: 0 };
        for (const c of await store.countByState()) counts[c.state] = c.count;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
  }

  /** Label children bound once per label set (routes, statuses and outcomes are few): prom-client's label lookup per call is slow. */
  private readonly requestChildren = new Map<string, { inc(): void }>();
  private readonly refreshChildren = new Map<string, { inc(): void }>();

  request(route: string, status: number): void {
    const key = `${route} ${status}`;
    let child = this.requestChildren.get(key);
    if (!child) {
      child = this.requests.labels({ route, status: String(status) });
      this.requestChildren.set(key, child);
    }
    child.inc();
  }

  refresh(outcome: string): void {
    let child = this.refreshChildren.get(outcome);
    if (!child) {
      child = this.refreshes.labels({ outcome });
      this.refreshChildren.set(outcome, child);
    }
    child.inc();
  }

  upstreamCall(outcome: string, seconds: number): void {
    this.upstream.observe({ outcome }, seconds);
  }

  notification(event: string, outcome: string): void {
    this.notifications.inc({ event, outcome });
  }

  async render(): Promise<Response> {
    return new Response(await this.registry.metrics(), { headers: { 'content-type': this.registry.contentType, 'cache-control': 'no-store' } });
  }
}
