/** One run for unit specs (beside the code) and end-to-end suites (test/), transpiled by swc. */
const swc = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
  sourceMaps: 'inline',
};

module.exports = {
  rootDir: '.',
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/scripts', '<rootDir>/test'],
  testRegex: '.*\\.(spec|e2e-spec)\\.ts$',
  transform: { '^.+\\.ts$': ['@swc/jest', swc], '/node_modules/content-disposition/.+\\.js$': ['@swc/jest', swc] },
  // @fastify/static (Swagger UI's assets) needs content-disposition 3, which ships only as ESM: Node 20.19+ can
  // require() it, jest's CommonJS runtime cannot, so swc turns that one package into CommonJS.
  transformIgnorePatterns: ['/node_modules/(?!content-disposition/)'],
  moduleNameMapper: { '^@bales/(.*)$': '<rootDir>/libs/$1/src' },
  testEnvironment: '<rootDir>/test/support/jest-environment.js',
  testTimeout: 60000,
  // End-to-end suites start Redis, gateways and worker threads: two at once on two cores is plenty.
  maxWorkers: 2,
};
