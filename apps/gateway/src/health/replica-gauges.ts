import { Injectable, OnModuleInit } from '@nestjs/common';
import { BalesMetrics } from '@bales/observability';
import { InferenceQueue } from '@bales/queue';

/** Points the gauges that mirror this replica's state at their sources; they are read only when Prometheus scrapes. */
@Injectable()
export class ReplicaGauges implements OnModuleInit {
  constructor(
    private readonly metrics: BalesMetrics,
    private readonly queue: InferenceQueue,
  ) {}

  onModuleInit(): void {
    this.metrics.readPendingFrom(() => this.queue.pendingCount);
    this.metrics.readQueueDepthFrom(() =>
      Object.entries(this.queue.depths()).flatMap(([modelId, byPriority]) => Object.entries(byPriority).map(([priority, rows]) => ({ modelId, priority: Number(priority), rows }))),
    );
  }
}
