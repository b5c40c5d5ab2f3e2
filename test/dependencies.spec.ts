import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';

// Checks of what npm installs, where the gateway's speed or correctness depends on a version the lockfile pins.

describe('dependencies', () => {
  it("runs Nest's Fastify adapter on the project's own Fastify 5.12+, whose body parser builds no deprecation wrappers per request", () => {
    // @nestjs/platform-fastify 11 pins Fastify 5.11.3; package.json overrides it (see docs/architecture.md).
    const adapterDir = dirname(require.resolve('@nestjs/platform-fastify/package.json'));
    const seenByAdapter = require.resolve('fastify/package.json', { paths: [adapterDir] });
    expect(seenByAdapter).toBe(require.resolve('fastify/package.json'));
    const [major, minor] = (JSON.parse(readFileSync(seenByAdapter, 'utf8')).version as string).split('.').map(Number);
    expect(major > 5 || (major === 5 && minor >= 12)).toBe(true);
  });
});
