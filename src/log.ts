import type { Logger } from './broker/context.ts';
import type { RequestLog } from './http/app.ts';
import { headerSafe } from './http/errors.ts';

type Fields = Record<string, string | number | boolean | undefined>;

/**
 * Text log lines on stderr, one per event. Callers only ever pass public facts
 * (routes, statuses, keyid prefixes, error codes); values are still flattened to
 * one printable line so that nothing can forge extra log lines.
 */
export function textLogger(write: (line: string) => void, now: () => number = Date.now): Logger & { request(r: RequestLog): void } {
  const line = (level: string, event: string, f: Fields = {}) => {
    const kv = Object.entries(f)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${headerSafe(String(v), 200).replace(/\s/g, '_')}`)
      .join(' ');
    write(`${new Date(now()).toISOString()} ${level} ${event}${kv ? ` ${kv}` : ''}`);
  };
  return {
    info: (e, f) => line('info', e, f),
    warn: (e, f) => line('warn', e, f),
    request: (r) => line(r.status >= 500 ? 'warn' : 'info', 'request', { method: r.method, route: r.route, status: r.status, ms: r.ms, keyid: r.keyid, error: r.error }),
  };
}
