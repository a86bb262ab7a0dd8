/** `broker notify test`: one test notification to every target in the settings (and flags/variables), each result on its own line. */
import { serveValues } from '../config/options.ts';
import { readSettings } from '../config/settings.ts';
import { BrokerError } from '../errors.ts';
import { testNotification } from '../notify/events.ts';
import { Notifier } from '../notify/notifier.ts';
import { targetsFrom } from '../notify/targets.ts';
import { silentLogger } from '../broker/context.ts';
import type { Fetch } from '../oauth/token-endpoint.ts';
import { EXIT } from './exit-codes.ts';
import type { Io } from './io.ts';

export async function notifyTestCommand(
  home: string,
  io: Io,
  deps: { fetch: Fetch; now: () => number } = { fetch: globalThis.fetch, now: Date.now },
): Promise<number> {
  const s = serveValues({}, io.env, readSettings(home));
  const targets = targetsFrom(s, deps.fetch);
  if (!targets.length) {
    throw new BrokerError('usage', 'No notification targets are set.', {
      hint: 'Record one with `broker init --notify-url URL` or `--notify-command CMD` (or set BROKER_NOTIFY_URLS).',
    });
  }
  const results = await new Notifier({ targets, now: deps.now, log: silentLogger }).test(testNotification(deps.now()));
  for (const r of results) io.out(r.ok ? `ok    ${r.label}` : `FAIL  ${r.label}: ${r.error}`);
  const failed = results.filter((r) => !r.ok).length;
  io.out(failed ? `\n${failed} of ${results.length} targets failed.` : `\nAll ${results.length} targets answered.`);
  return failed ? EXIT.upstream : EXIT.ok;
}
