/**
 * Delivers notifications beside serving: `send` returns at once and never
 * throws; each cause is sent once (in memory, then claimed in the store so that
 * a restart or another instance on the same database does not send it again);
 * a failing target is retried with back-off for up to an hour; and what waits is
 * bounded (MAX_PENDING causes), so a dead target cannot grow memory.
 */
import type { Logger } from '../broker/context.ts';
import type { Cause, Notification } from './events.ts';
import type { Target } from './targets.ts';

/** Causes being delivered or waiting for a retry; more are dropped (and counted). */
export const MAX_PENDING = 100;
/** How long a failing target is retried, from the first attempt. */
export const RETRY_FOR_MS = 3_600_000;
/** Pauses between attempts; the last one repeats until RETRY_FOR_MS is spent. */
export const RETRY_DELAYS_MS = [5_000, 15_000, 60_000, 120_000, 300_000, 600_000];
/** Causes remembered in memory (the store remembers them all). */
const SEEN_LIMIT = 10_000;

export type DeliveryOutcome = 'sent' | 'retry' | 'gave_up' | 'dropped';

export interface NotifierDeps {
  targets: Target[];
  now: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** True if this process may send `key` (first claim ever, in any instance); may be sync or async. */
  claim?: (key: string, now: number) => boolean | Promise<boolean>;
  /** Counts each delivery's fate (metrics). */
  observe?: (event: string, outcome: DeliveryOutcome) => void;
  log: Logger;
  maxPending?: number;
}

export interface TestResult {
  label: string;
  ok: boolean;
  error?: string;
}

export class Notifier {
  private targets: Target[];
  private readonly seen = new Set<string>();
  private pending = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly deps: NotifierDeps) {
    this.targets = deps.targets;
    this.sleep = deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms).unref?.()));
  }

  /** New targets (a reloaded settings file); deliveries under way finish with the old ones. */
  setTargets(targets: Target[]): void {
    this.targets = targets;
  }

  /** The targets as logs may name them (no whole URL). */
  targetLabels(): string[] {
    return this.targets.map((t) => t.label);
  }

  /** Queues the cause's notification once; returns at once. */
  send(cause: Cause): void {
    const targets = this.targets;
    if (!targets.length || this.seen.has(cause.key)) return;
    if (this.seen.size >= SEEN_LIMIT) this.seen.delete(this.seen.values().next().value!);
    this.seen.add(cause.key);
    const event = cause.notification.event;
    if (this.pending >= (this.deps.maxPending ?? MAX_PENDING)) {
      // Forgotten again, so that a later occurrence may still be sent.
      this.seen.delete(cause.key);
      this.deps.observe?.(event, 'dropped');
      this.deps.log.warn('notify.dropped', { event, pending: this.pending });
      return;
    }
    this.pending++;
    void this.run(cause, targets).finally(() => {
      this.pending--;
      if (this.pending === 0) for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves when nothing is being delivered (tests; a clean stop). */
  idle(): Promise<void> {
    return this.pending === 0 ? Promise.resolve() : new Promise((r) => this.waiters.push(r));
  }

  /** `broker notify test`: one attempt per target, no claim, no retry. */
  async test(n: Notification): Promise<TestResult[]> {
    return Promise.all(
      this.targets.map(async (t) => {
        try {
          await t.send(n);
          return { label: t.label, ok: true };
        } catch (e) {
          return { label: t.label, ok: false, error: reason(e) };
        }
      }),
    );
  }

  private async run(cause: Cause, targets: Target[]): Promise<void> {
    const { deps } = this;
    try {
      if (deps.claim && !(await deps.claim(cause.key, deps.now()))) return;
    } catch {
      // The store failing must not keep the owner uninformed: send, at worst twice.
      deps.log.warn('notify.claim_failed', { event: cause.notification.event });
    }
    await Promise.all(targets.map((t) => this.deliver(t, cause.notification)));
  }

  private async deliver(t: Target, n: Notification): Promise<void> {
    const { deps } = this;
    const started = deps.now();
    for (let attempt = 0; ; attempt++) {
      try {
        await t.send(n);
        deps.observe?.(n.event, 'sent');
        deps.log.info('notify.sent', { event: n.event, target: t.label, attempt: attempt + 1 });
        return;
      } catch (e) {
        const delay = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]!;
        if (deps.now() + delay - started > RETRY_FOR_MS) {
          deps.observe?.(n.event, 'gave_up');
          deps.log.warn('notify.gave_up', { event: n.event, target: t.label, attempts: attempt + 1, error: reason(e) });
          return;
        }
        deps.observe?.(n.event, 'retry');
        deps.log.warn('notify.retry', { event: n.event, target: t.label, attempt: attempt + 1, error: reason(e), retry_in_s: delay / 1000 });
        await this.sleep(delay);
      }
    }
  }
}

function reason(e: unknown): string {
  const err = e as Error & { code?: string; cause?: { code?: string } };
  if (err?.name === 'TimeoutError') return 'timed out';
  return (err?.code ?? err?.cause?.code ?? err?.message ?? 'error').toString().slice(0, 200);
}
