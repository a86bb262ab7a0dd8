/**
 * Counts failures per key (a client address) in a fixed window. Only failures
 * count, so a caller who presents valid credentials is never slowed down.
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
  retryAfter(key: string): number {
    const w = this.windows.get(key);
    if (!w) return 0;
    const t = this.now();
    if (t >= w.resetAt) {
      this.windows.delete(key);
      return 0;
    }
    return w.count >= this.limit ? Math.ceil((w.resetAt - t) / 1000) : 0;
  }

  fail(key: string): void {
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
  forgive(key: string): void {
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
