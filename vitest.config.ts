import { defineConfig } from 'vitest/config';

// One Chromium for the whole run (test/global-setup.ts); test files connect to it over CDP.
// Two cores: run at most two files at once so browser tests do not starve each other.
export default defineConfig({
  test: {
    include: ['protocol/**/*.test.ts', 'signaling/**/*.test.ts', 'ingress/**/*.test.ts', 'browser-host/**/*.test.ts', 'node/**/*.test.ts', 'cli/**/*.test.ts', 'tools/**/*.test.ts', 'test/**/*.test.ts'],
    // The cluster suite has its own config and run (vitest.cluster.config.ts, npm run test:cluster).
    exclude: ['**/node_modules/**', 'test/cluster/**'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
    // The JSON report lets .ci/run print a plain "N passed, N failed" line.
    reporters: ['default', ['json', { outputFile: '.vitest-report.json' }]],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
