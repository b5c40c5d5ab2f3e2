import { Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { OutgoingRow } from './job-codec';
import { PendingRequests } from './pending-requests';
import { QueueDepth } from './queue-depth';
import { RedisConnections } from './redis-connections';

/** One job on its way into the queue, followed until each of its requests is settled. */
export interface WatchedJob {
  /** The model version's queue it is written to. */
  queue: Queue;
  modelId: string;
  priority: number;
  /** Each row's deadline, as the shared depth counts them. */
  deadlines: number[];
  jobId?: string;
  unsettled: number;
  /** Rows that got a result: the job was fetched, so there is nothing to remove. */
  served: number;
  /** The key of the job's row bytes, when they are not inline: removed with the job. */
  bytesKey?: string;
}

/**
 * Removes from the queue a job whose every request was answered without a result (deadline passed, client gone),
 * so no processor spends time on it and the shared depth makes room at once.
 */
@Injectable()
export class AbandonedJobs {
  constructor(
    private readonly pending: PendingRequests,
    private readonly depth: QueueDepth,
    private readonly redis: RedisConnections,
  ) {}

  /** Follows a job's requests from before it is written; a request already settled counts at once. */
  watch(queue: Queue, modelId: string, priority: number, rows: OutgoingRow[], bytesKey?: string): WatchedJob {
    const job: WatchedJob = { queue, modelId, priority, deadlines: rows.map((r) => r.deadline), unsettled: rows.length, served: 0, bytesKey };
    for (const row of rows) {
      this.pending.onSettled(row.requestId, (served) => {
        job.unsettled--;
        if (served) job.served++;
        this.removeIfAbandoned(job);
      });
    }
    return job;
  }

  /** Records the id the job was written under; a job abandoned while it was being written is removed now. */
  written(job: WatchedJob, jobId: string | undefined): void {
    job.jobId = jobId;
    this.removeIfAbandoned(job);
  }

  /** BullMQ refuses to remove a job a worker holds (it returns 0); that worker skips the rows instead. */
  private removeIfAbandoned(job: WatchedJob): void {
    if (job.unsettled > 0 || job.served > 0 || !job.jobId) return;
    const jobId = job.jobId;
    job.jobId = undefined;
    job.queue.remove(jobId).then(
      (removed) => {
        if (removed !== 1) return;
        this.depth.removeUnrun(job.modelId, job.priority, job.deadlines);
        if (job.bytesKey) this.dropBytes(job.queue, job.bytesKey);
      },
      (err: Error) => this.redis.logError(err),
    );
  }

  private dropBytes(queue: Queue, key: string): void {
    queue.client.then((client) => client.del(key)).catch((err: Error) => this.redis.logError(err));
  }
}
