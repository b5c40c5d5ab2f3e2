import { nestsDeeperThan } from './nesting-limit.interceptor';

const nested = (depth: number) => JSON.parse('['.repeat(depth) + '1' + ']'.repeat(depth));

describe('nestsDeeperThan', () => {
  it('accepts a body as deep as the limit and refuses one level more, for arrays and objects', () => {
    expect(nestsDeeperThan(nested(4), 4)).toBe(false);
    expect(nestsDeeperThan(nested(5), 4)).toBe(true);
    expect(nestsDeeperThan({ payload: { input: [[1, 2]] } }, 4)).toBe(false);
    expect(nestsDeeperThan({ payload: { input: [[[1]]] } }, 4)).toBe(true);
  });

  it('walks a body far deeper than the call stack allows without overflowing', () => {
    expect(nestsDeeperThan(nested(200_000), 32)).toBe(true);
  });

  it('treats scalars and null as depth zero', () => {
    for (const v of [null, 1, 'x', true, undefined]) expect(nestsDeeperThan(v, 0)).toBe(false);
  });
});
