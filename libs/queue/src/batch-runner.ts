import { Injectable } from '@nestjs/common';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelRegistry } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { epochNow } from './clock';
import type { QueuedRow } from './job-codec';
import { PendingRequests, ResultMessage } from './pending-requests';
import { ResultRouter } from './result-router';

/** Counters of what the runner did, for health and tests. */
export interface RunnerStats {
  batches: number;
  rowsRun: number;
  /**
   * Rows whose client was already answered when they were fetched or when their batch started (the deadline
   * passed, or the client closed the connection): never run.
   */
  rowsExpired: number;
}

/** A row's error as its result message: the code, the message and the fields the error body carries beside them. */
const failure = (id: string, e: BalesError): ResultMessage => ({ id, ok: false, code: e.code, message: e.message, ...(e.details && { details: e.details }) });

/** Runs one batch on the model registry and sends every row's result (or error) back to its origin. */
@Injectable()
export class BatchRunner {
  readonly stats: RunnerStats = { batches: 0, rowsRun: 0, rowsExpired: 0 };

  constructor(
    private readonly metrics: BalesMetrics,
    private readonly registry: ModelRegistry,
    private readonly router: ResultRouter,
    private readonly pending: PendingRequests,
  ) {}

  /**
   * Drops rows nobody waits for any more, counting them: past their deadline (it travels with the row), or whose
   * client has gone (known here for this replica's clients, announced over Redis for the others').
   */
  dropExpired<T extends QueuedRow>(rows: T[]): T[] {
    const now = epochNow();
    const self = this.router.instanceId;
    const live = rows.filter((r) => r.deadline > now && (r.origin === self ? this.pending.has(r.requestId) : !this.router.isCancelled(r.requestId)));
    this.stats.rowsExpired += rows.length - live.length;
    return live;
  }

  /** Runs rows of one model version (the served one when none is named). */
  async run(modelId: string, rows: QueuedRow[], version?: string): Promise<void> {
    const live = this.dropExpired(rows);
    if (live.length === 0) return;
    let messages: ResultMessage[];
    try {
      const outcome = await this.registry.run(modelId, live.map((r) => r.row), version);
      this.stats.batches++;
      this.stats.rowsRun += live.length;
      this.metrics.batch(live.length, outcome.inferenceMs);
      // Enqueue times come from the producing replica's clock: skew must not make a wait negative.
      for (const r of live) this.metrics.queued(Math.max(0, outcome.startedAt - r.enqueuedAt));
      messages = live.map((r, i) => ({
        id: r.requestId,
        ok: true,
        model_id: modelId,
        model_version: outcome.version,
        result: outcome.results[i],
        batch_size: live.length,
        queued_ms: Math.max(0, Math.round((outcome.startedAt - r.enqueuedAt) * 1000) / 1000),
        timing: { fetchedAt: r.fetchedAt, startedAt: outcome.startedAt, inferenceMs: outcome.inferenceMs },
      }));
    } catch (err) {
      const e = err instanceof BalesError ? err : new BalesError(ErrorCode.INFERENCE_FAILED, String(err));
      messages = live.map((r) => failure(r.requestId, e));
    }
    this.router.deliver(live.map((r, i) => ({ origin: r.origin, message: messages[i] })));
  }

  /** Answers rows that cannot be batched at all (unknown model, malformed input) with an error. */
  reject(rows: QueuedRow[], error: BalesError): void {
    this.router.deliver(rows.map((r) => ({ origin: r.origin, message: failure(r.requestId, error) })));
  }
}
