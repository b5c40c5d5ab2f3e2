import { scripts } from '../../package.json';

/**
 * The glibc malloc settings `npm start`, `npm run start:prod` and the image run the gateway with (docs/operations.md, Memory),
 * read from the start:prod script; test/deploy.spec.ts checks that the others carry the same.
 */
export function productionMallocEnv(): Record<string, string> {
  return Object.fromEntries([...scripts['start:prod'].matchAll(/\b(MALLOC_\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
}

/**
 * The V8 flags the gateway runs with in production (docs/operations.md, Memory: a young generation of 64 MB per semi-space),
 * read from the start:prod script, between `node` and the entry point; test/deploy.spec.ts checks the others.
 */
export function productionNodeFlags(): string[] {
  return /\bnode((?: --\S+)*) \S+$/.exec(scripts['start:prod'])![1].split(' ').filter(Boolean);
}
