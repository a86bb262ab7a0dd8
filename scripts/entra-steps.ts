/**
 * The README's Entra registration steps are the wizard's own text
 * (src/cli/entra-steps.ts), so that they are written once. `bun scripts/entra-steps.ts`
 * rewrites the README's section between the markers; test/readme.test.ts fails when
 * the two differ.
 */
import { PERMISSION_STEPS, registrationSteps, SECRET_STEPS } from '../src/cli/entra-steps.ts';
import { rewriteReadme, withSection } from './readme-section.ts';

export const BEGIN = '<!-- entra-steps: generated from src/cli/entra-steps.ts by `bun scripts/entra-steps.ts`; edit there -->';
export const END = '<!-- /entra-steps -->';

/** The section as the README carries it: the wizard's three blocks, in one text block. */
export function entraSection(): string {
  return [BEGIN, '```text', registrationSteps('{public-url}/logged-in'), '', SECRET_STEPS, '', PERMISSION_STEPS, '```', END].join('\n');
}

/** The README with its section replaced by the current text. */
export function withEntraSection(readme: string): string {
  return withSection(readme, BEGIN, END, entraSection());
}

if (import.meta.main) rewriteReadme('the Entra steps', withEntraSection);
