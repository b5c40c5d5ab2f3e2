import { Controller, Get, Res, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckResult } from '@nestjs/terminus';
import type { FastifyReply } from 'fastify';
import { BalesConfig } from '@bales/config';
import { ModelRegistry, ModelState } from '@bales/model-registry';
import { BatchRunner, PendingRequests, QueueConnection, QueueDepth } from '@bales/queue';
import { BUILD_VERSION } from './build-version';
import { HealthDto } from './dto/health.dto';
import { ProbesService } from './probes.service';
import { Fleet } from '@bales/fleet';

/** A failed probe's body: terminus' result plus one line naming every failing check. */
export type ProbeFailure = HealthCheckResult & { message: string };

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly pending: PendingRequests,
    private readonly connection: QueueConnection,
    private readonly depth: QueueDepth,
    private readonly runner: BatchRunner,
    private readonly probes: ProbesService,
    private readonly fleet: Fleet,
  ) {}

  /** Whether this replica can serve, its models, the work queued and held, and what its processor ran. */
  @Get()
  @ApiOperation({ summary: 'Replica details', description: 'Always 200; status is degraded while Redis is unreachable, the worker pool is down, or a model is failed. Probes: /health/live and /health/ready.' })
  @ApiOkResponse({ type: HealthDto })
  health(): HealthDto {
    const redis = this.connection.connected ? 'up' : 'down';
    const workers = this.registry.ready ? 'up' : 'down';
    const { batches, rowsRun, rowsExpired } = this.runner.stats;
    const models = this.registry.list();
    const failed = models.some((m) => m.state === ModelState.FAILED);
    return {
      status: redis === 'up' && workers === 'up' && !failed ? 'ok' : 'degraded',
      version: BUILD_VERSION,
      redis,
      models: models.map((m) => ({ id: m.id, version: m.version, task: m.task, state: m.state, ...(m.reason !== undefined && { reason: m.reason }) })),
      queue_depths: this.depth.snapshot(),
      pending_requests: this.pending.size,
      workers: { threads: this.registry.slots, state: workers },
      processor: { enabled: this.config.PROCESSOR_ENABLED, batches, rows_run: rowsRun, rows_expired: rowsExpired },
      uptime_s: Math.round(process.uptime()),
      replica_id: this.fleet.self,
      replicas: this.fleet.replicas().map((b) => ({ replica_id: b.replica_id, ready: b.ready, draining: b.draining, started_at: b.started_at, ...(b.busy !== undefined && { busy: b.busy }), models: b.models.map((m) => ({ id: m.model_id, version: m.version, state: m.state })) })),
    };
  }

  /** Kubernetes liveness probe: never depends on Redis, so an outage does not restart healthy pods. */
  @Get('live')
  @ApiOperation({ summary: 'Kubernetes liveness probe', description: 'The process and its event loop answer. Never depends on Redis.' })
  @HealthCheck()
  live(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthCheckResult | ProbeFailure> {
    return probe(this.probes.live(), reply);
  }

  /**
   * Kubernetes readiness probe: 503 naming the cause while Redis is away, models are loading, shutdown began, or
   * (with STRICT_READINESS) a model is failed.
   */
  @Get('ready')
  @ApiOperation({
    summary: 'Kubernetes readiness probe',
    description: 'Redis reachable, models loaded in the worker pool, not shutting down, and with STRICT_READINESS=true (the default) every model ready; otherwise 503 with message naming each failing check and each model not ready.',
  })
  @HealthCheck()
  ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthCheckResult | ProbeFailure> {
    return probe(this.probes.ready(), reply);
  }
}

/**
 * Answers a failed check with 503 and terminus' own body here rather than through the error filter,
 * whose {statusCode, error, message} shape would drop which checks failed.
 */
async function probe(check: Promise<HealthCheckResult>, reply: FastifyReply): Promise<HealthCheckResult | ProbeFailure> {
  try {
    return await check;
  } catch (err) {
    if (!(err instanceof ServiceUnavailableException)) throw err;
    const result = err.getResponse() as HealthCheckResult;
    const causes = Object.entries(result.error ?? {}).map(([key, v]) => `${key}: ${(v as { message?: string }).message ?? 'down'}`);
    reply.status(503);
    return { ...result, message: `not ready: ${causes.join('; ') || result.status}` };
  }
}
