/**
 * The start-and-stop that every file around a provider or a harness repeats: one
 * call in a file or a `describe` starts it before its tests and closes it after.
 * The object returned stands for the started one (it is usable from the first
 * test on, not while the file is collected).
 */
import { afterAll, beforeAll } from 'vitest';
import { type Entra, type EntraOptions, startEntra } from './entra.ts';
import { type Harness, type HarnessOptions, startHarness } from './harness.ts';

/** The local Entra-like provider for the enclosing file or `describe`. */
export function useEntra(opts?: EntraOptions): Entra {
  return useStarted('the provider', () => startEntra(opts));
}

/** An in-process broker on the local provider (see harness.ts) for the enclosing file or `describe`. */
export function useHarness(opts?: HarnessOptions): Harness {
  return useStarted('the harness', () => startHarness(opts));
}

function useStarted<T extends { close(): Promise<void> }>(what: string, start: () => Promise<T>): T {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
  });
  afterAll(async () => {
    await started?.close();
  });
  return standIn(what, () => started);
}

/** Forwards to what `current` returns, with methods bound to it (so `entra.login` can be passed on). */
function standIn<T extends object>(what: string, current: () => T | undefined): T {
  const target = (): T => {
    const t = current();
    if (!t) throw new Error(`${what} is used before its beforeAll ran`);
    return t;
  };
  return new Proxy({} as T, {
    get(_, key) {
      const t = target();
      const v: unknown = Reflect.get(t, key, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
    set(_, key, value) {
      return Reflect.set(target(), key, value);
    },
  });
}
