import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests spawn the CLI and open real databases; two workers match this 2-core machine.
    maxWorkers: 2,
  },
});
