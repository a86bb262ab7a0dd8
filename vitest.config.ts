import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // End-to-end files spawn binaries and providers on loopback ports; two cores are plenty busy with one file at a time each.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
