import { Injectable, OnModuleInit } from '@nestjs/common';
import { Fleet } from '@bales/fleet';
import { ModelRegistry, ModelState } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { PendingRequests, QueueConsumer, QueueDepth } from '@bales/queue';

/** Points the gauges that mirror this replica's state at their sources; they are read only when Prometheus scrapes. */
@Injectable()
export class ReplicaGauges implements OnModuleInit {
  constructor(
    private readonly metrics: BalesMetrics,
    private readonly pending: PendingRequests,
    private readonly depth: QueueDepth,
    private readonly registry: ModelRegistry,
    private readonly fleet: Fleet,
    private readonly consumer: QueueConsumer,
  ) {}

  onModuleInit(): void {
    this.metrics.readPendingFrom(() => this.pending.size);
    this.metrics.readQueueDepthFrom(() =>
      Object.entries(this.depth.snapshot()).flatMap(([modelId, byPriority]) => Object.entries(byPriority).map(([priority, rows]) => ({ modelId, priority: Number(priority), rows }))),
    );
    this.metrics.readReplicasFrom(() => this.fleet.replicas().length);
    this.metrics.readWorkerLoadFrom(() => this.consumer.load);
    this.metrics.readModelStatesFrom(Object.values(ModelState), () => this.registry.list().map((m) => ({ modelId: m.id, state: m.state })));
  }
}
