/**
 * The README's registration recipes for Google, Dropbox, Box and pCloud are the
 * wizard's own text (src/cli/provider-steps.ts), so that they are written once.
 * `bun scripts/provider-steps.ts` rewrites the README's section between the
 * markers; test/readme.test.ts fails when the two differ.
 */
import { type OtherProvider, providerSteps } from '../src/cli/provider-steps.ts';
import { rewriteReadme, withSection } from './readme-section.ts';

export const BEGIN = '<!-- provider-steps: generated from src/cli/provider-steps.ts by `bun scripts/provider-steps.ts`; edit there -->';
export const END = '<!-- /provider-steps -->';

const ORDER: OtherProvider[] = ['google', 'dropbox', 'box', 'pcloud'];

export function providerSection(): string {
  return [BEGIN, '```text', ORDER.map((id) => providerSteps(id, '{public-url}/logged-in')).join('\n\n'), '```', END].join('\n');
}

export function withProviderSection(readme: string): string {
  return withSection(readme, BEGIN, END, providerSection());
}

if (import.meta.main) rewriteReadme('the provider recipes', withProviderSection);
