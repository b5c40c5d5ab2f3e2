import { Injectable } from '@nestjs/common';
import type { QueuedRow } from './job-codec';
import { LocalRowBytes } from './local-row-bytes';

/** Takes a row straight into this replica's batches, or returns false when it cannot now. */
export type DirectTaker = (row: QueuedRow) => boolean;

/**
 * The shortcuts from this replica's producer to its own consumer.
 * - A row taken directly, used only while nothing can be more urgent: the consumer's fetch waits on an empty queue
 *   and a worker thread is free. The consumer offers it; the producer only asks. A row taken here is never written
 *   to Redis, so it cannot be run twice, and its client is on this replica, so nothing is lost that queueing would
 *   have saved.
 * - The row bytes of the jobs the producer wrote, which the consumer takes from memory when it runs such a job.
 */
@Injectable()
export class DirectDispatch {
  private taker?: DirectTaker;
  readonly rowBytes = new LocalRowBytes();

  /** Called by the consumer while it can take rows directly; `undefined` withdraws the offer (shutdown). */
  offer(taker: DirectTaker | undefined): void {
    this.taker = taker;
  }

  tryTake(row: QueuedRow): boolean {
    return this.taker?.(row) ?? false;
  }
}
