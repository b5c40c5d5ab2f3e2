/**
 * Rows per model version's queue, counted up and down; a queue with none left has no entry, so `has()` says
 * whether any row of it is still outstanding.
 */
export class RowCounts {
  private readonly counts = new Map<string, number>();

  add(queue: string, rows: number): void {
    const n = (this.counts.get(queue) ?? 0) + rows;
    if (n > 0) this.counts.set(queue, n);
    else this.counts.delete(queue);
  }

  has(queue: string): boolean {
    return this.counts.has(queue);
  }
}
