/**
 * The CLI's one voice on stderr, after age: `broker: error: …`, `broker: warning: …`
 * and `broker: hint: …`, each starting lower-case with no trailing period, a hint on
 * its own line. Messages are written as sentences where they are made, because the
 * same text is an HTTP error_description too; only here are they set in this voice.
 */
import type { Io } from './io.ts';

export type Kind = 'error' | 'warning' | 'hint';

/** Names that keep their capital at the start of a line. */
const PROPER = new Set(['Microsoft', 'Entra', 'Duplicati', 'Bun', 'Linux']);

/** `No settings in /x.` → `no settings in /x`; `AuthID…`, `BROKER_HOME…`, `Microsoft…` keep their capitals. */
export function lowerStart(text: string): string {
  const word = /^[A-Za-z][A-Za-z0-9_]*/.exec(text)?.[0] ?? '';
  return /^[A-Z][a-z]*$/.test(word) && !PROPER.has(word) ? text[0]!.toLowerCase() + text.slice(1) : text;
}

/** The lines for one message: the first one prefixed and trimmed of its period, the rest as written. */
export function voiced(kind: Kind, text: string): string {
  const [first = '', ...rest] = text.split('\n');
  return [`broker: ${kind}: ${lowerStart(first).replace(/\.$/, '')}`, ...rest].join('\n');
}

export function sayError(io: Pick<Io, 'err'>, text: string, hint?: string): void {
  io.err(voiced('error', text));
  if (hint) io.err(voiced('hint', hint));
}

export function sayWarning(io: Pick<Io, 'err'>, text: string): void {
  io.err(voiced('warning', text));
}
