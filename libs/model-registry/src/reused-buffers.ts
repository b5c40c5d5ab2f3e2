/**
 * Buffers kept from batch to batch instead of allocated for each. V8 schedules full GCs by the external memory
 * allocated since the last one, and a batch of image rows is megabytes of it: allocated per batch, its inputs alone
 * set off several full GCs a second at saturation (docs/operations.md, Memory).
 */
export class ReusedBuffers<B extends { readonly byteLength: number }> {
  private readonly free: B[] = [];

  /**
   * @param allocate makes a buffer of exactly `bytes`; take() asks for powers of two, so a few sizes serve all batches
   * @param keep free buffers kept at most; one more given back drops the smallest
   */
  constructor(
    private readonly allocate: (bytes: number) => B,
    private readonly keep = 2,
  ) {}

  /** The smallest free buffer of at least `bytes`, or a new one of the next power of two (64 KB at least). */
  take(bytes: number): B {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      if (this.free[i].byteLength >= bytes && (best < 0 || this.free[i].byteLength < this.free[best].byteLength)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0];
    return this.allocate(Math.max(MIN_BYTES, 2 ** Math.ceil(Math.log2(Math.max(1, bytes)))));
  }

  /** Gives a buffer back once nothing reads it any more. Returns the buffer dropped to stay within `keep`, if any. */
  give(buffer: B): B | undefined {
    this.free.push(buffer);
    if (this.free.length <= this.keep) return undefined;
    let smallest = 0;
    for (let i = 1; i < this.free.length; i++) if (this.free[i].byteLength < this.free[smallest].byteLength) smallest = i;
    return this.free.splice(smallest, 1)[0];
  }
}

const MIN_BYTES = 64 * 1024;

/** Where each of a batch's inputs sits in the memory it travels in: 8-byte aligned, for any element type. */
export function feedOffsets(byteLengths: readonly number[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const bytes of byteLengths) {
    offsets.push(total);
    total += Math.ceil(bytes / 8) * 8;
  }
  return { offsets, total };
}
