/**
 * The deployed-artifacts tier (`npm run test:deployed`): synthesizes the stack and runs its bundles in
 * child processes, so it has a config of its own and stays out of `npm test`.
 * @type {import('jest').Config}
 */
import base from '../../jest.config.js';

export default {
  ...base,
  rootDir: '../..',
  testMatch: ['<rootDir>/test/deployed/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 120_000,
};
