import { BrokerError } from '../errors.ts';
import { MemoryEphemera } from '../store/memory.ts';
import type { Store } from '../store/types.ts';
import { SharedLimiter } from './rate-limit.ts';

const WINDOW_MS = 15 * 60_000;
/** Wrong passcodes per client (an address, an IPv6 /64) per window; then 429. */
const PER_CLIENT = 5;
/** Wrong passcodes from everyone, per window, before each check starts to wait. */
const FREE_FAILURES = 10;
/** The wait before a check grows by this per wrong passcode beyond the free ones … */
const DELAY_STEP_MS = 250;
/** … up to this. With checks one at a time, guessing from any number of addresses gets at most one guess per 6 s (600 an hour). */
export const MAX_CHECK_DELAY_MS = 6_000;
/**
 * Checks waiting their turn, the running one included. Beyond it a request is
 * told to come back in a few seconds, rather than piling up: the last in line
 * waits at most MAX_QUEUE × MAX_CHECK_DELAY_MS (24 s), below the 30 s a
 * connection may stay idle, and each Argon2 check takes 64 MiB.
 */
const MAX_QUEUE = 4;
/** The longest a wrong passcode's answer may take, by design. */
export const PASSCODE_QUEUE_WAIT_MS = MAX_QUEUE * MAX_CHECK_DELAY_MS;

/**
 * Guards the connect passcode: only its owner may create connections. The hash is
 * Argon2id (Bun.password), because unlike an authid a passcode may be a word a
 * person chose.
 *
 * One client (address) gets 5 tries per 15 minutes, then 429. Guesses from many
 * addresses are not refused, since that would let fifty strangers lock the owner
 * out: instead every check waits its turn, one at a time, after a pause that grows
 * with the wrong passcodes seen from everyone. The owner's right passcode then
 * still gets in, only later.
 */
export class PasscodeGuard {
  private readonly perClient: SharedLimiter;
  private readonly global: SharedLimiter;
  /** The tail of the line of checks. */
  private line: Promise<unknown> = Promise.resolve();
  private queued = 0;

  constructor(
    /** Read at each check: a reloaded settings file brings a new passcode at once. */
    private readonly hash: () => string,
    now: () => number,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
    /** Where the counts live: the store, so that every instance on one database counts every guess. */
    store: () => Pick<Store, 'fail' | 'failures' | 'forgive'> = memoryCounters(),
  ) {
    this.perClient = new SharedLimiter(store, 'passcode', PER_CLIENT, WINDOW_MS, now);
    this.global = new SharedLimiter(store, 'passcode-all', Number.POSITIVE_INFINITY, WINDOW_MS, now);
  }

  async verify(passcode: string, client: string): Promise<void> {
    if (this.queued >= MAX_QUEUE) {
      throw new BrokerError('rate_limited', 'Many passcode attempts are being checked right now; try again in a few seconds.', {
        retryAfter: Math.ceil(MAX_CHECK_DELAY_MS / 1000),
      });
    }
    // Counted before the check (in one atomic step of the store, whichever instance
    // counts) and taken back on success, so that parallel guesses from one client
    // cannot all slip in under its limit. One over the limit is refused, uncounted.
    this.queued++;
    try {
      const wait = await this.perClient.attempt(client);
      if (wait > 0) throw new BrokerError('rate_limited', 'Too many wrong passcodes; wait before trying again.', { retryAfter: wait });
    } catch (e) {
      this.queued--;
      throw e;
    }
    const turn = this.line.then(() => this.check(passcode));
    this.line = turn.catch(() => undefined);
    let ok: boolean;
    try {
      ok = await turn;
    } finally {
      this.queued--;
    }
    if (ok) {
      await this.perClient.forgive(client);
      return;
    }
    throw new BrokerError('passcode_invalid', 'Wrong connect passcode.', {
      hint: 'The passcode was set or printed by `broker init`; run `broker init` again to set a new one.',
    });
  }

  /** One check at a time, so the pause before each one spaces out all guesses, whoever sends them. */
  private async check(passcode: string): Promise<boolean> {
    const delay = checkDelayMs(await this.global.count('*'));
    if (delay > 0) await this.sleep(delay);
    // An over-long input is wrong anyway; do not spend Argon2 time on it.
    const ok = passcode.length > 0 && passcode.length <= PASSCODE_MAX_LENGTH && (await Bun.password.verify(passcode, this.hash()).catch(() => false));
    if (!ok) await this.global.fail('*');
    return ok;
  }
}

/** The pause before a check, after `failures` wrong passcodes from everyone in the window. */
export function checkDelayMs(failures: number): number {
  return Math.min(MAX_CHECK_DELAY_MS, Math.max(0, failures - FREE_FAILURES + 1) * DELAY_STEP_MS);
}

/** One limit for `init` and the form: a passcode that init accepts must be one the form can match. */
export const PASSCODE_MIN_LENGTH = 8;
export const PASSCODE_MAX_LENGTH = 256;

export function hashPasscode(passcode: string): Promise<string> {
  return Bun.password.hash(passcode, { algorithm: 'argon2id' });
}

/** Counters in this process's memory, for a guard used without a store. */
function memoryCounters(): () => Pick<Store, 'fail' | 'failures' | 'forgive'> {
  const m = new MemoryEphemera();
  const counters = {
    fail: async (kind: string, key: string, windowMs: number, now: number) => m.fail(kind, key, windowMs, now),
    failures: async (kind: string, key: string, now: number) => m.failures(kind, key, now),
    forgive: async (kind: string, key: string) => m.forgive(kind, key),
  };
  return () => counters;
}
