/**
 * Three projects, transpiled by swc:
 * - unit: specs beside the code; no Redis, no gateway, no worker thread, no connection of any kind;
 * - e2e: the suites in test/ and every spec that starts Redis, gateways or worker threads (*.e2e-spec.ts, and the
 *   specs beside the code listed in WITH_SERVICES);
 * - repo: checks of the repository's own files (Dockerfile, manifests, k6 scripts, lockfile, committed models).
 * `jest` runs all three; `jest --selectProjects unit` one (npm run test:unit, test:e2e, test:repo).
 */
const swc = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};

/** Specs beside the code that start Redis or worker threads: they run with the end-to-end suites. */
const WITH_SERVICES = [
  'libs/model-registry/src/model-registry.spec.ts',
  'libs/model-registry/src/worker-pool.spec.ts',
];

const shared = {
  rootDir: __dirname,
  transform: { '^.+\\.ts$': ['@swc/jest', swc] },
  moduleNameMapper: { '^@bales/(.*)$': '<rootDir>/libs/$1/src' },
  testEnvironment: '<rootDir>/test/support/jest-environment.js',
};

module.exports = {
  projects: [
    {
      ...shared,
      displayName: 'unit',
      roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/test/support'],
      testMatch: ['<rootDir>/{apps,libs}/**/*.spec.ts', '<rootDir>/test/support/**/*.spec.ts'],
      testPathIgnorePatterns: ['/node_modules/', ...WITH_SERVICES.map((path) => `<rootDir>/${path}`)],
      // The shared environment, refusing every connection a spec opens.
      testEnvironment: '<rootDir>/test/support/jest-unit-environment.js',
    },
    {
      ...shared,
      displayName: 'e2e',
      roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/scripts', '<rootDir>/test'],
      testMatch: ['<rootDir>/**/*.e2e-spec.ts', ...WITH_SERVICES.map((path) => `<rootDir>/${path}`)],
    },
    {
      ...shared,
      displayName: 'repo',
      roots: ['<rootDir>/scripts', '<rootDir>/test'],
      testMatch: ['<rootDir>/test/*.spec.ts', '<rootDir>/scripts/*.spec.ts'],
    },
  ],
  testTimeout: 60000,
  // End-to-end suites start Redis, gateways and worker threads: two at once on two cores is plenty.
  maxWorkers: 2,
};
