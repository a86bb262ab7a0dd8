import type { Logger } from './broker/context.ts';
import type { RequestLog } from './http/app.ts';
import { headerSafe } from './http/errors.ts';

type Fields = Record<string, string | number | boolean | undefined>;
export type LogFormat = 'text' | 'json';
export type RequestLogger = Logger & {
  request(r: RequestLog): void;
  /** Something is wrong and needs the owner, though the broker goes on (e.g. a settings file that became invalid). */
  error(event: string, fields?: Fields): void;
  /** A reloaded settings file may change the format. */
  setFormat(format: LogFormat): void;
};

/** Values that headerSafe and the whitespace replacement leave as they are (up to 300 characters). */
const PLAIN = /^[A-Za-z0-9_.-]{1,300}$/;
const PLAIN_ROUTE = /^[A-Za-z0-9_./-]{1,300}$/;

/**
 * One line per event on stderr, as text (`time level event k=v …`) or JSON.
 * Callers only pass public facts (routes, statuses, keyid prefixes, error
 * codes); text values are still flattened to one printable line so that nothing
 * can forge extra log lines.
 */
export function makeLogger(initial: LogFormat, write: (line: string) => void, now: () => number = Date.now): RequestLogger {
  let format = initial;
  // Under load many lines share a millisecond: its ISO text is made once.
  let lastMs = Number.NaN;
  let lastIso = '';
  const isoNow = (): string => {
    const t = now();
    if (t !== lastMs) {
      lastMs = t;
      lastIso = new Date(t).toISOString();
    }
    return lastIso;
  };
  const line = (level: string, event: string, f: Fields = {}) => {
    const time = isoNow();
    const fields = Object.entries(f).filter(([, v]) => v !== undefined);
    if (format === 'json') {
      write(JSON.stringify({ time, level, event, ...Object.fromEntries(fields) }));
      return;
    }
    const kv = fields.map(([k, v]) => `${k}=${headerSafe(String(v), 300).replace(/\s/g, '_')}`).join(' ');
    write(`${time} ${level} ${event}${kv ? ` ${kv}` : ''}`);
  };
  return {
    info: (e, f) => line('info', e, f),
    warn: (e, f) => line('warn', e, f),
    error: (e, f) => line('error', e, f),
    setFormat: (f) => {
      format = f;
    },
    request: (r) => {
      // The usual line (text, a plain method, no error) is built directly: the same text as line() makes of it.
      if (format === 'text' && r.error === undefined && PLAIN.test(r.method) && PLAIN_ROUTE.test(r.route) && (r.keyid === undefined || PLAIN.test(r.keyid))) {
        write(
          `${isoNow()} ${r.status >= 500 ? 'warn' : 'info'} request method=${r.method} route=${r.route} status=${r.status} ms=${r.ms}${r.keyid === undefined ? '' : ` keyid=${r.keyid}`}`,
        );
        return;
      }
      line(r.status >= 500 ? 'warn' : 'info', 'request', { method: r.method, route: r.route, status: r.status, ms: r.ms, keyid: r.keyid, error: r.error });
    },
  };
}
