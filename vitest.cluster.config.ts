import { defineConfig } from 'vitest/config';

/**
 * The cluster suite (test/cluster/, SCALE-OUT §4): real signaling and ingress processes, Redis,
 * Postgres, network namespaces. One file at a time (each starts a whole cluster on two cores),
 * generous timeouts (a scenario runs up to a minute of load). `npm run test:cluster`; .ci/run
 * runs it after `npm test`. One Chromium for the cross-node WebRTC scenario (test/global-setup.ts).
 */
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    maxWorkers: 1,
    minWorkers: 1,
    reporters: ['default', ['json', { outputFile: '.vitest-cluster-report.json' }]],
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
});
