import { isIPv6 } from 'node:net';
import type { Store } from '../store/types.ts';

/**
 * What counts as one client for rate limits: an IPv4 address, or the /64 prefix
 * of an IPv6 address, since one home or one server usually gets a whole /64 and
 * may pick any address in it. IPv4-mapped IPv6 counts as the IPv4 address.
 * Anything else (e.g. 'unknown') is its own key.
 */
export function clientKey(address: string): string {
  const a = address
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '');
  if (!isIPv6(a)) return a;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  return `${expandIPv6(a).slice(0, 4).join(':')}::/64`;
}

/** The eight groups of a valid IPv6 address, without leading zeros. */
function expandIPv6(a: string): string[] {
  let text = a;
  // A dotted IPv4 tail (e.g. ::1.2.3.4) is the last two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => parseInt(g, 16).toString(16));
}

/**
 * Counts failures per key (a client address, see clientKey) in a fixed window.
 * Only failures count, so a caller who presents valid credentials is never slowed down.
 */
export class FailureLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number,
    /** Bounds memory under a flood of distinct addresses. */
    private readonly maxKeys = 10_000,
  ) {}

  /** Seconds until the key may try again, or 0 if it may try now. */
  retryAfter(address: string): number {
    const key = clientKey(address);
    const w = this.windows.get(key);
    if (!w) return 0;
    const t = this.now();
    if (t >= w.resetAt) {
      this.windows.delete(key);
      return 0;
    }
    return w.count >= this.limit ? Math.ceil((w.resetAt - t) / 1000) : 0;
  }

  /** Failures of the key in its current window. */
  count(address: string): number {
    const w = this.windows.get(clientKey(address));
    return w && this.now() < w.resetAt ? w.count : 0;
  }

  fail(address: string): void {
    const key = clientKey(address);
    const t = this.now();
    const w = this.windows.get(key);
    if (w && t < w.resetAt) {
      w.count++;
      return;
    }
    if (this.windows.size >= this.maxKeys) this.sweep(t);
    this.windows.set(key, { count: 1, resetAt: t + this.windowMs });
  }

  /** Takes back one counted failure (an attempt counted up front that turned out valid). */
  forgive(address: string): void {
    const key = clientKey(address);
    const w = this.windows.get(key);
    if (w && --w.count <= 0) this.windows.delete(key);
  }

  private sweep(t: number): void {
    for (const [k, w] of this.windows) if (t >= w.resetAt) this.windows.delete(k);
    // Still full: forget the oldest entries rather than grow without bound.
    for (const k of this.windows.keys()) {
      if (this.windows.size < this.maxKeys) break;
      this.windows.delete(k);
    }
  }
}

/**
 * The same counting as FailureLimiter, kept in the store: with several instances
 * on one PostgreSQL every instance sees every failure, wherever it was counted.
 * (On SQLite the store keeps the counters in this process's memory.)
 */
export class SharedLimiter {
  constructor(
    private readonly store: () => Pick<Store, 'fail' | 'failures' | 'forgive'>,
    private readonly kind: string,
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** Seconds until the key may try again, or 0 if it may try now. */
  async retryAfter(address: string): Promise<number> {
    const t = this.now();
    const w = await this.store().failures(this.kind, clientKey(address), t);
    return w && w.count >= this.limit ? Math.ceil((w.resetAt - t) / 1000) : 0;
  }

  /** Failures of the key in its current window. */
  async count(address: string): Promise<number> {
    return (await this.store().failures(this.kind, clientKey(address), this.now()))?.count ?? 0;
  }

  /** Counts one failure; returns the seconds to wait now (0 while below the limit). */
  async fail(address: string): Promise<number> {
    const t = this.now();
    const w = await this.store().fail(this.kind, clientKey(address), this.windowMs, t);
    return w.count >= this.limit ? Math.ceil((w.resetAt - t) / 1000) : 0;
  }

  /**
   * Counts an attempt up front (taken back with forgive when it succeeds). Over
   * the limit it is not counted, and the answer is the seconds to wait; else 0.
   */
  async attempt(address: string): Promise<number> {
    const t = this.now();
    const key = clientKey(address);
    const w = await this.store().fail(this.kind, key, this.windowMs, t);
    if (w.count <= this.limit) return 0;
    await this.store().forgive(this.kind, key, t);
    return Math.max(1, Math.ceil((w.resetAt - t) / 1000));
  }

  async forgive(address: string): Promise<void> {
    await this.store().forgive(this.kind, clientKey(address), this.now());
  }
}
