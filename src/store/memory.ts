import type { Window } from './types.ts';

/** Bounds memory under a flood of distinct keys. */
const MAX_KEYS = 10_000;

/**
 * Transients and failure counters in this process's memory: what the SQLite
 * store uses, since only one `serve` runs on a SQLite store. Lost on restart,
 * as before (a login in progress starts over).
 */
export class MemoryEphemera {
  private readonly transients = new Map<string, { value: Uint8Array; expiresAt: number }>();
  private readonly windows = new Map<string, Window>();

  putTransient(kind: string, key: string, value: Uint8Array, expiresAt: number, now: number): boolean {
    const k = `${kind}\0${key}`;
    const e = this.transients.get(k);
    if (e && e.expiresAt > now) return false;
    if (this.transients.size >= MAX_KEYS * 2) this.sweepTransients(now);
    this.transients.set(k, { value, expiresAt });
    return true;
  }

  getTransient(kind: string, key: string, now: number): { value: Uint8Array; expiresAt: number } | null {
    const k = `${kind}\0${key}`;
    const e = this.transients.get(k);
    if (!e) return null;
    if (e.expiresAt <= now) {
      this.transients.delete(k);
      return null;
    }
    return e;
  }

  takeTransient(kind: string, key: string, now: number): { value: Uint8Array; expiresAt: number } | null {
    const e = this.getTransient(kind, key, now);
    if (e) this.transients.delete(`${kind}\0${key}`);
    return e;
  }

  replaceTransient(kind: string, key: string, expected: Uint8Array, value: Uint8Array, expiresAt: number, now: number): boolean {
    const e = this.getTransient(kind, key, now);
    if (!e || Buffer.compare(e.value, expected) !== 0) return false;
    this.transients.set(`${kind}\0${key}`, { value, expiresAt });
    return true;
  }

  countTransient(kind: string, now: number): { count: number; soonest: number | null } {
    let count = 0;
    let soonest: number | null = null;
    for (const [k, e] of this.transients) {
      if (!k.startsWith(`${kind}\0`) || e.expiresAt <= now) continue;
      count++;
      soonest = soonest === null ? e.expiresAt : Math.min(soonest, e.expiresAt);
    }
    return { count, soonest };
  }

  fail(kind: string, key: string, windowMs: number, now: number): Window {
    const k = `${kind}\0${key}`;
    const w = this.windows.get(k);
    if (w && now < w.resetAt) {
      w.count++;
      return { ...w };
    }
    if (this.windows.size >= MAX_KEYS) this.sweepWindows(now);
    const fresh = { count: 1, resetAt: now + windowMs };
    this.windows.set(k, fresh);
    return { ...fresh };
  }

  failures(kind: string, key: string, now: number): Window | null {
    const k = `${kind}\0${key}`;
    const w = this.windows.get(k);
    if (!w) return null;
    if (now >= w.resetAt) {
      this.windows.delete(k);
      return null;
    }
    return { ...w };
  }

  forgive(kind: string, key: string): void {
    const k = `${kind}\0${key}`;
    const w = this.windows.get(k);
    if (w && --w.count <= 0) this.windows.delete(k);
  }

  private sweepTransients(now: number): void {
    for (const [k, e] of this.transients) if (e.expiresAt <= now) this.transients.delete(k);
  }

  private sweepWindows(now: number): void {
    for (const [k, w] of this.windows) if (now >= w.resetAt) this.windows.delete(k);
    // Still full: forget the oldest entries rather than grow without bound.
    for (const k of this.windows.keys()) {
      if (this.windows.size < MAX_KEYS) break;
      this.windows.delete(k);
    }
  }
}
