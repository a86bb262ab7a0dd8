import { BrokerError } from '../errors.ts';
import { FailureLimiter } from './rate-limit.ts';

/**
 * Guards the connect passcode: only its owner may create connections. The hash is
 * Argon2id (Bun.password), because unlike an authid a passcode may be a word a
 * person chose. Failures are limited per client address and in total, so
 * guessing from many addresses is slow too.
 */
export class PasscodeGuard {
  private readonly perClient: FailureLimiter;
  private readonly global: FailureLimiter;

  constructor(
    private readonly hash: string,
    now: () => number,
  ) {
    this.perClient = new FailureLimiter(5, 15 * 60_000, now);
    this.global = new FailureLimiter(50, 15 * 60_000, now);
  }

  async verify(passcode: string, client: string): Promise<void> {
    const wait = Math.max(this.perClient.retryAfter(client), this.global.retryAfter('*'));
    if (wait > 0) {
      throw new BrokerError('rate_limited', 'Too many wrong passcodes; wait before trying again.', { retryAfter: wait });
    }
    // Counted before the (slow, memory-hungry) Argon2 check and taken back on
    // success, so that parallel guesses cannot all slip in under the limit.
    this.perClient.fail(client);
    this.global.fail('*');
    // An over-long input is wrong anyway; do not spend Argon2 time on it.
    const ok = passcode.length > 0 && passcode.length <= PASSCODE_MAX_LENGTH && (await Bun.password.verify(passcode, this.hash).catch(() => false));
    if (ok) {
      this.perClient.forgive(client);
      this.global.forgive('*');
      return;
    }
    throw new BrokerError('passcode_invalid', 'Wrong connect passcode.', {
      hint: 'The passcode was set or printed by `broker init`; run `broker init` again to set a new one.',
    });
  }
}

/** One limit for `init` and the form: a passcode that init accepts must be one the form can match. */
export const PASSCODE_MIN_LENGTH = 8;
export const PASSCODE_MAX_LENGTH = 256;

export function hashPasscode(passcode: string): Promise<string> {
  return Bun.password.hash(passcode, { algorithm: 'argon2id' });
}
