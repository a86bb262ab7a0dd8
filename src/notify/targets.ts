/**
 * Where notifications go: an HTTP POST, or a local command. Each `send` either
 * resolves (delivered) or throws (the Notifier retries); each is bounded in time.
 */
import type { Fetch } from '../oauth/token-endpoint.ts';
import type { Notification } from './events.ts';
import { detectFormat, type Format, render } from './formats.ts';

export interface Target {
  /** For logs and `broker notify test`: never the whole URL (a webhook's path is its password). */
  readonly label: string;
  send(n: Notification): Promise<void>;
}

export const HTTP_TIMEOUT_MS = 10_000;
export const COMMAND_TIMEOUT_MS = 30_000;

/** `https://hooks.slack.com/…`: the origin only, and whether a path follows. */
export function urlLabel(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname.length > 1 || u.search ? '/…' : ''}`;
}

export function httpTarget(url: string, fallback: Format | undefined, fetch: Fetch, timeoutMs = HTTP_TIMEOUT_MS): Target {
  const format = detectFormat(url, fallback);
  return {
    label: `${urlLabel(url)} (${format})`,
    async send(n) {
      const { body, headers } = render(n, format, url);
      // Never follow a redirect: the target is what the owner wrote down, nothing else.
      const res = await fetch(url, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
      // The body is not needed; release the connection.
      await res.body?.cancel().catch(() => {});
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    },
  };
}

/** `command msmtp`: the program only; never its arguments or an assignment before it (`PASS=… msmtp`), which may hold a password. */
export function commandLabel(command: string): string {
  const program =
    command
      .trim()
      .split(/\s+/)
      .find((w) => !/^\w+=/.test(w)) ?? '';
  return /^[\w./-]+$/.test(program) ? `command ${program.split('/').at(-1)}` : 'command';
}

/** The event as BROKER_EVENT_* variables: the same fields as the JSON on stdin. */
export function eventEnv(n: Notification): Record<string, string> {
  return {
    BROKER_EVENT: n.event,
    BROKER_EVENT_SEVERITY: n.severity,
    BROKER_EVENT_KEYID: n.keyid ?? '',
    BROKER_EVENT_SERVICE: n.service ?? '',
    BROKER_EVENT_MESSAGE: n.message,
    BROKER_EVENT_HINT: n.hint ?? '',
    BROKER_EVENT_TIME: n.time,
  };
}

/**
 * `sh -c CMD` with the event as JSON on stdin and as variables. The environment
 * is built from nothing: the broker's own (BROKER_CLIENT_SECRET, credentials)
 * never reaches the command; only PATH, HOME and LANG are passed on.
 */
export function commandTarget(command: string, timeoutMs = COMMAND_TIMEOUT_MS, base: Record<string, string | undefined> = process.env): Target {
  return {
    label: commandLabel(command),
    async send(n) {
      const env: Record<string, string> = { PATH: base.PATH ?? '/usr/local/bin:/usr/bin:/bin', ...eventEnv(n) };
      if (base.HOME) env.HOME = base.HOME;
      if (base.LANG) env.LANG = base.LANG;
      const proc = Bun.spawn(['/bin/sh', '-c', command], {
        stdin: Buffer.from(`${JSON.stringify(n)}\n`),
        stdout: 'ignore',
        stderr: 'pipe',
        env,
      });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        proc.kill('SIGKILL');
      }, timeoutMs);
      try {
        const code = await proc.exited;
        // A child the command left behind may hold stderr open: read what is there, briefly.
        const err = await Promise.race([new Response(proc.stderr).text(), Bun.sleep(500).then(() => '')]);
        if (timedOut) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s`);
        if (code !== 0) throw new Error(`exit ${code}${err.trim() ? `: ${err.trim().split('\n').at(-1)!.slice(0, 200)}` : ''}`);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The settings' targets, in order: each URL, then the command. */
export function targetsFrom(s: { notifyUrls?: readonly string[]; notifyFormat?: string; notifyCommand?: string }, fetch: Fetch): Target[] {
  const out: Target[] = (s.notifyUrls ?? []).map((u) => httpTarget(u, s.notifyFormat as Format | undefined, fetch));
  if (s.notifyCommand) out.push(commandTarget(s.notifyCommand));
  return out;
}
