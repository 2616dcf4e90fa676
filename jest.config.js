/**
 * Jest over the TypeScript sources as they are (ESM): run with `npm test`, or `npx jest [files]`.
 * ESM under jest needs node's --experimental-vm-modules; bin/jest.js... (see package.json "test").
 * @type {import('jest').Config}
 */
export default {
  testMatch: ['<rootDir>/test/**/*.test.ts'],
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
  setupFiles: ['<rootDir>/test/support/jest-env.ts'],
};
