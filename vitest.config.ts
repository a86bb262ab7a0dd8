import { defineConfig } from 'vitest/config';

/**
 * Two projects. `unit`: in-process only (no dist/broker, no browser, no spawned
 * process; the in-process Entra fixture on loopback is allowed), seconds in all, the
 * edit-test loop: `npm run test:unit`. `e2e`: everything else, after `npm run build`.
 * A new file is e2e until it is listed here.
 */
const UNIT = [
  'test/broker.test.ts',
  'test/database-url.test.ts',
  'test/errors.test.ts',
  'test/fetch-tokens.test.ts',
  'test/format.test.ts',
  'test/id-token.test.ts',
  'test/lockout.test.ts',
  'test/login.test.ts',
  'test/metrics.test.ts',
  'test/notify.test.ts',
  'test/options.test.ts',
  'test/provider-errors.test.ts',
  'test/provider-settings.test.ts',
  'test/quick.test.ts',
  'test/pages.test.ts',
  'test/rate-limit.test.ts',
  'test/readme.test.ts',
  'test/revoke.test.ts',
  'test/seal.test.ts',
  'test/server.test.ts',
  'test/service-unit.test.ts',
  'test/settings.test.ts',
  'test/store.test.ts',
  'test/token-errors.test.ts',
  'test/voice.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // End-to-end files spawn binaries and providers on loopback ports; two cores are plenty busy with one file at a time each.
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      { extends: true, test: { name: 'e2e', include: ['test/**/*.test.ts'], exclude: UNIT } },
    ],
  },
});
