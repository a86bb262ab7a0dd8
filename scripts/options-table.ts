/**
 * The README's table of options is made from the one table in
 * src/config/options.ts, so that each option is written once. `bun
 * scripts/options-table.ts` rewrites the README's section between the markers;
 * test/readme.test.ts fails when the two differ.
 */
import { OPTION_LIST, type OptionSpec, psNote } from '../src/config/options.ts';
import { rewriteReadme, withSection } from './readme-section.ts';

export const BEGIN = '<!-- options: generated from src/config/options.ts by `bun scripts/options-table.ts`; edit there -->';
export const END = '<!-- /options -->';

const code = (s: string) => `\`${s}\``;

function flags(o: OptionSpec): string {
  const file = o.fileFlag && `${code(`${o.fileFlag} PATH`)} (${code('-')} = stdin)`;
  const flag = o.flag && `${code(o.arg ? `${o.flag} ${o.arg}` : o.flag)}${o.repeatable ? ' (repeatable)' : ''}`;
  return [file, flag].filter(Boolean).join(', ');
}

function shownDefault(o: OptionSpec): string {
  if (o.required && o.default === undefined) return '(required)';
  if (o.defaultText) return o.defaultText.includes(' ') ? o.defaultText : code(o.defaultText);
  if (typeof o.default === 'string') return code(o.default);
  if (Array.isArray(o.default)) return o.default.map(code).join(', ');
  return o.arg ? 'none' : 'off';
}

/** One row an option: flag, variable, default, what init and serve do with it, and its meaning. */
export function optionsSection(): string {
  const rows = OPTION_LIST.map((o) =>
    [
      flags(o),
      o.env ? code(o.env) : '',
      shownDefault(o),
      o.init === 'answer' ? 'asks' : 'records',
      o.serve ? 'overrides' : '',
      o.restart ? 'restart' : 'applied',
      [o.help, o.more, psNote(o), o.secret && 'never shown'].filter(Boolean).join('; '),
    ].join(' | '),
  );
  return [
    BEGIN,
    '| flag | variable | default | `init` | `serve` | change while serving | meaning |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r} |`),
    END,
  ].join('\n');
}

/** The README with its section replaced by the current text. */
export function withOptionsSection(readme: string): string {
  return withSection(readme, BEGIN, END, optionsSection());
}

if (import.meta.main) rewriteReadme('the options', withOptionsSection);
