import { Controller, Get } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { ModelRegistry } from '@bales/model-registry';
import { BatchRunner, InferenceQueue } from '@bales/queue';

@Controller('health')
export class HealthController {
  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly queue: InferenceQueue,
    private readonly runner: BatchRunner,
  ) {}

  /** Whether this replica can serve, its models, the requests it holds and what its processor ran. */
  @Get()
  health() {
    const redis = this.queue.connected ? 'up' : 'down';
    const { batches, rowsRun, rowsExpired } = this.runner.stats;
    return {
      status: redis === 'up' ? 'ok' : 'degraded',
      redis,
      models: this.registry.list().map((m) => ({ id: m.id, version: m.version, task: m.task })),
      pending_requests: this.queue.pendingCount,
      processor: { enabled: this.config.PROCESSOR_ENABLED, batches, rows_run: rowsRun, rows_expired: rowsExpired },
      uptime_s: Math.round(process.uptime()),
    };
  }
}
