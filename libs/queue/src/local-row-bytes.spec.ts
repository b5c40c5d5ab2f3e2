import { LocalRowBytes } from './local-row-bytes';

const kb = (n: number) => Buffer.alloc(n * 1024);

describe('LocalRowBytes', () => {
  it('keeps nothing until enabled, as on a replica that runs no processor', () => {
    const local = new LocalRowBytes();
    local.keep('a', [kb(1)], 2000, 1000);
    expect(local.take('a')).toBeUndefined();
    expect(local.size).toBe(0);
  });

  it('gives the parts kept under a key once, and counts them while held', () => {
    const local = new LocalRowBytes();
    local.enable();
    const parts = [kb(1), kb(2)];
    local.keep('a', parts, 2000, 1000);
    expect(local.size).toBe(3 * 1024);
    expect(local.take('a')).toBe(parts);
    expect(local.take('a')).toBeUndefined();
    expect(local.size).toBe(0);
  });

  it('holds at most its bound: the oldest go first, and a job bigger than the bound is not kept', () => {
    const local = new LocalRowBytes(10 * 1024);
    local.enable();
    local.keep('a', [kb(4)], 9000, 1000);
    local.keep('b', [kb(4)], 9000, 1000);
    local.keep('c', [kb(4)], 9000, 1000);
    expect([local.take('a'), local.take('b') !== undefined, local.take('c') !== undefined]).toEqual([undefined, true, true]);
    local.keep('big', [kb(11)], 9000, 1000);
    expect(local.take('big')).toBeUndefined();
    expect(local.size).toBe(0);
  });

  it('drops what is past its deadline when more comes, and what its producer gives up on', () => {
    const local = new LocalRowBytes();
    local.enable();
    local.keep('old', [kb(1)], 1500, 1000);
    local.keep('new', [kb(1)], 9000, 2000);
    expect(local.take('old')).toBeUndefined();
    local.drop('new');
    expect(local.take('new')).toBeUndefined();
    expect(local.size).toBe(0);
  });
});
