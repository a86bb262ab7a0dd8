/** The repository's own text, for tests that hold the documentation to the code. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');

export const readme = (): string => readFileSync(join(ROOT, 'README.md'), 'utf8');

/** Every .ts file under src/, as [path relative to the root, text]. */
export function sourceFiles(dir = 'src'): [string, string][] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => {
      const path = join(e.parentPath, e.name);
      return [path.slice(ROOT.length + 1), readFileSync(path, 'utf8')];
    });
}

/** The rows of the first markdown table whose header row is exactly `header`, as trimmed cells. */
export function markdownTable(text: string, header: string): string[][] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === header);
  if (start < 0) throw new Error(`no table with header ${header}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(' | ')
        .map((c) => c.trim()),
    );
  }
  return rows;
}
