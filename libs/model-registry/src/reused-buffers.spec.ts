import { ReusedBuffers, feedOffsets } from './reused-buffers';

describe('ReusedBuffers', () => {
  const counting = () => {
    const made: number[] = [];
    const pool = new ReusedBuffers<ArrayBuffer>((bytes) => {
      made.push(bytes);
      return new ArrayBuffer(bytes);
    });
    return { pool, made };
  };

  it('allocates powers of two of at least 64 KB, and hands a given-back buffer out again instead of a new one', () => {
    const { pool, made } = counting();
    const first = pool.take(110_592);
    expect(first.byteLength).toBe(131_072);
    expect(pool.take(10).byteLength).toBe(65_536);
    pool.give(first);
    expect(pool.take(100_000)).toBe(first);
    expect(made).toEqual([131_072, 65_536]);
  });

  it('never hands out a buffer that is still taken', () => {
    const { pool } = counting();
    const a = pool.take(1000);
    const b = pool.take(1000);
    expect(b).not.toBe(a);
    pool.give(a);
    expect(pool.take(1000)).toBe(a);
  });

  it('takes the smallest free buffer that fits', () => {
    const { pool } = counting();
    const big = pool.take(1 << 20);
    const small = pool.take(100_000);
    pool.give(big);
    pool.give(small);
    expect(pool.take(70_000)).toBe(small);
    expect(pool.take(200_000)).toBe(big);
  });

  it('keeps at most `keep` free buffers, dropping the smallest', () => {
    const pool = new ReusedBuffers<ArrayBuffer>((bytes) => new ArrayBuffer(bytes), 2);
    const [a, b, c] = [pool.take(1 << 20), pool.take(1 << 17), pool.take(1 << 18)];
    expect(pool.give(a)).toBeUndefined();
    expect(pool.give(b)).toBeUndefined();
    expect(pool.give(c)).toBe(b);
  });
});

describe('feedOffsets', () => {
  it('places each input on an 8-byte boundary, so an int64 or float64 view of it is aligned', () => {
    expect(feedOffsets([12, 8, 1024, 0, 3])).toEqual({ offsets: [0, 16, 24, 1048, 1048], total: 1056 });
  });
});
