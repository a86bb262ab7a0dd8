/** Facts the README repeats from the code, held to it so that each is written once. */
import { describe, expect, it } from 'vitest';
import { entraSection, withEntraSection } from '../scripts/entra-steps.ts';
import { optionsSection, withOptionsSection } from '../scripts/options-table.ts';
import { providerSection, withProviderSection } from '../scripts/provider-steps.ts';
import { readme, sourceFiles } from './support/source.ts';

describe('the README', () => {
  it('documents every BROKER_* variable that src reads or names', () => {
    const used = new Set(sourceFiles().flatMap(([, text]) => text.match(/\bBROKER_[A-Z][A-Z_]*/g) ?? []));
    expect(used.size).toBeGreaterThan(5);
    const text = readme();
    const missing = [...used].filter((v) => !new RegExp(`\\b${v}\\b`).test(text)).sort();
    expect(missing, 'add these to the README').toEqual([]);
  });

  it("carries the wizard's Entra steps, word for word (bun scripts/entra-steps.ts rewrites them)", () => {
    const text = readme();
    expect(text).toContain(entraSection());
    expect(withEntraSection(text)).toBe(text);
  });

  it("carries the wizard's recipes for the other providers, word for word (bun scripts/provider-steps.ts rewrites them)", () => {
    const text = readme();
    expect(text).toContain(providerSection());
    expect(withProviderSection(text)).toBe(text);
  });

  it('carries the table of options, row for row: flag, variable, default (bun scripts/options-table.ts rewrites it)', () => {
    const text = readme();
    expect(text).toContain(optionsSection());
    expect(withOptionsSection(text)).toBe(text);
  });
});
