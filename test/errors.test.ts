/**
 * The error table in src/errors.ts is the one source of each code's meaning: the
 * README must say the same, and every code must be one the broker can raise.
 */
import { describe, expect, it } from 'vitest';
import { EXIT_CODE } from '../src/cli/exit-codes.ts';
import { ERROR_CODES, ERRORS } from '../src/errors.ts';
import { HTTP_STATUS } from '../src/http/errors.ts';
import { markdownTable, readme, sourceFiles } from './support/source.ts';

describe('the error table', () => {
  it('is what the HTTP and exit-code maps say', () => {
    for (const c of ERROR_CODES) {
      expect(HTTP_STATUS[c], c).toBe(ERRORS[c].status);
      expect(EXIT_CODE[c], c).toBe(ERRORS[c].exit);
    }
    expect(Object.keys(HTTP_STATUS).sort()).toEqual([...ERROR_CODES].sort());
    expect(Object.keys(EXIT_CODE).sort()).toEqual([...ERROR_CODES].sort());
  });

  it('is in the README, code by code, with the same status, exit code and meaning', () => {
    const rows = markdownTable(readme(), '| code | HTTP status | exit code | meaning |');
    const documented = new Map(
      rows.map(([code, status, exit, meaning]) => [code!.replaceAll('`', ''), { status: Number(status), exit: Number(exit), meaning }]),
    );
    expect([...documented.keys()].sort()).toEqual([...ERROR_CODES].sort());
    for (const c of ERROR_CODES) expect(documented.get(c), c).toEqual({ status: ERRORS[c].status, exit: ERRORS[c].exit, meaning: ERRORS[c].meaning });
  });

  it('has no code that src never raises', () => {
    const text = sourceFiles()
      .filter(([path]) => path !== 'src/errors.ts')
      .map(([, t]) => t)
      .join('\n');
    const unused = ERROR_CODES.filter((c) => !text.includes(`'${c}'`));
    expect(unused).toEqual([]);
  });
});
