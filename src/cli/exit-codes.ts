import { ERROR_CODES, ERRORS, EXIT, type ErrorCode } from '../errors.ts';

/** The exit codes live beside the error table in src/errors.ts; re-exported for the CLI. */
export { EXIT };

/** Each code's exit code, from the one table in src/errors.ts. */
export const EXIT_CODE = Object.fromEntries(ERROR_CODES.map((c) => [c, ERRORS[c].exit])) as Record<ErrorCode, number>;
