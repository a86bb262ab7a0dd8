/** A README section between two marker comments, made from the code by a script (entra-steps.ts, options-table.ts). */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The README with the section between `begin` and `end` (markers included) replaced by `section`. */
export function withSection(readme: string, begin: string, end: string, section: string): string {
  const start = readme.indexOf(begin);
  const stop = readme.indexOf(end);
  if (start < 0 || stop < start) throw new Error(`README.md has no markers ${begin}`);
  return readme.slice(0, start) + section + readme.slice(stop + end.length);
}

/** Rewrites README.md with `rewrite`, saying whether `what` changed. */
export function rewriteReadme(what: string, rewrite: (readme: string) => string): void {
  const path = join(resolve(import.meta.dirname, '..'), 'README.md');
  const before = readFileSync(path, 'utf8');
  const after = rewrite(before);
  if (after !== before) writeFileSync(path, after);
  process.stdout.write(`README.md: ${what} ${after === before ? 'are current' : 'were rewritten'}\n`);
}
