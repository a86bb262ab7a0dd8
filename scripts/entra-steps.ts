/**
 * The README's Entra registration steps are the wizard's own text
 * (src/cli/entra-steps.ts), so that they are written once. `bun scripts/entra-steps.ts`
 * rewrites the README's section between the markers; test/readme.test.ts fails when
 * the two differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PERMISSION_STEPS, registrationSteps, SECRET_STEPS } from '../src/cli/entra-steps.ts';

export const BEGIN = '<!-- entra-steps: generated from src/cli/entra-steps.ts by `bun scripts/entra-steps.ts`; edit there -->';
export const END = '<!-- /entra-steps -->';

/** The section as the README carries it: the wizard's three blocks, in one text block. */
export function entraSection(): string {
  return [BEGIN, '```text', registrationSteps('{public-url}/logged-in'), '', SECRET_STEPS, '', PERMISSION_STEPS, '```', END].join('\n');
}

/** The README with its section replaced by the current text. */
export function withEntraSection(readme: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error('README.md has no entra-steps markers');
  return readme.slice(0, start) + entraSection() + readme.slice(end + END.length);
}

if (import.meta.main) {
  const path = join(resolve(import.meta.dirname, '..'), 'README.md');
  const before = readFileSync(path, 'utf8');
  const after = withEntraSection(before);
  if (after !== before) writeFileSync(path, after);
  process.stdout.write(after === before ? 'README.md: the Entra steps are current\n' : 'README.md: the Entra steps were rewritten\n');
}
