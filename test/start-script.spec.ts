import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './support/gateway';
import { freePort } from './support/redis-server';

describe('npm start (scripts/start.js)', () => {
  it('names REDIS_URL with its password masked when no Redis answers there', async () => {
    const url = `redis://bales:s3cret-pass@127.0.0.1:${await freePort()}/0`;
    // No redis-server on PATH, so it cannot start a throwaway one and must say where it looked.
    const run = spawnSync(process.execPath, [join(ROOT, 'scripts/start.js')], {
      cwd: join(ROOT, 'test'),
      env: { PATH: mkdtempSync(join(tmpdir(), 'bales-no-redis-')), REDIS_URL: url },
      encoding: 'utf8',
      timeout: 15000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('no Redis answers at REDIS_URL=redis://***@127.0.0.1:');
    expect(run.stderr + run.stdout).not.toContain('s3cret-pass');
  });
});
