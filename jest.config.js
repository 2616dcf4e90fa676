/**
 * Jest over the TypeScript sources as they are (ES modules, compiled per file by @swc/jest): `npm test`, or
 * `npx jest [files]`. Jest's ES module support needs node's --experimental-vm-modules: .npmrc passes it.
 * See docs/internals/testing.md.
 * @type {import('jest').Config}
 */
export default {
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // The deployed-artifacts tier has its own config (npm run test:deployed).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/deployed/'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'es6' },
      },
    ],
  },
  testEnvironment: '<rootDir>/test/support/jest-environment.js',
  testTimeout: 30_000,
  // Every core: most integration time is spent waiting on the emulators, not computing.
  maxWorkers: '100%',
  setupFiles: ['<rootDir>/test/support/jest-env.ts'],
};
