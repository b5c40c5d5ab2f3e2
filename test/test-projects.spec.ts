import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';

// jest.config.js sorts specs into projects by path: a spec no pattern matches would never run.

const ROOT = join(__dirname, '..');

async function listed(project: string): Promise<string[]> {
  const args = [join(ROOT, 'node_modules/jest/bin/jest.js'), '--listTests', '--json', '--selectProjects', project];
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: ROOT });
  return (JSON.parse(stdout) as string[]).map((path) => relative(ROOT, path));
}

const specs = ['apps', 'libs', 'scripts', 'test'].flatMap((dir) =>
  readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((file) => /\.(spec|e2e-spec)\.ts$/.test(file))
    .map((file) => join(dir, file)),
);

describe('jest projects', () => {
  it('run every spec in the repository in exactly one of unit, e2e and repo', async () => {
    const [unit, e2e, repo] = await Promise.all(['unit', 'e2e', 'repo'].map(listed));
    const projectsOf = (spec: string) => Object.entries({ unit, e2e, repo }).flatMap(([name, files]) => (files.includes(spec) ? [name] : []));
    expect(specs.filter((spec) => projectsOf(spec).length !== 1).map((spec) => `${spec}: ${projectsOf(spec).join(', ') || 'none'}`)).toEqual([]);
    expect(unit.length + e2e.length + repo.length).toBe(specs.length);
    expect(repo).toEqual(expect.arrayContaining(['test/deploy.spec.ts', 'test/k6.spec.ts', 'test/dependencies.spec.ts']));
    expect(e2e).toEqual(expect.arrayContaining(['scripts/bench/bench.e2e-spec.ts', 'test/redis-server.e2e-spec.ts']));
  });

  it('name only specs that exist among those beside the code that run end to end', () => {
    const { projects } = require('../jest.config.js') as { projects: { displayName: string; testMatch: string[] }[] };
    const named = projects.find((p) => p.displayName === 'e2e')!.testMatch.filter((m) => !m.includes('*')).map((m) => m.replace('<rootDir>/', ''));
    expect(named.filter((path) => !specs.includes(path))).toEqual([]);
  });
});
