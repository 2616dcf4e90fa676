import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The deployed-artifacts tier runs on its own (npm run test:deployed, test/deployed/vitest.config.ts).
    exclude: ['**/node_modules/**', 'test/deployed/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Metrics would print EMF blobs and the logger JSON lines into the test output.
    env: { POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'SILENT', AWS_REGION: 'us-east-1' },
  },
});
