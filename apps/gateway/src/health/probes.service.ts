import { Injectable } from '@nestjs/common';
import { HealthCheckResult, HealthCheckService, HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { BalesConfig } from '@bales/config';
import { ModelRegistry, ModelState } from '@bales/model-registry';
import { Fleet } from '@bales/fleet';
import { PendingRequests, QueueConnection } from '@bales/queue';

/** How long one turn of the event loop takes right now: the time from scheduling to running a macrotask. */
function eventLoopLagMs(): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => setImmediate(() => resolve(Math.round((performance.now() - started) * 1000) / 1000)));
}

/** The Kubernetes probes, as terminus health checks. */
@Injectable()
export class ProbesService {
  constructor(
    private readonly config: BalesConfig,
    private readonly health: HealthCheckService,
    private readonly indicator: HealthIndicatorService,
    private readonly registry: ModelRegistry,
    private readonly pending: PendingRequests,
    private readonly connection: QueueConnection,
    private readonly fleet: Fleet,
  ) {}

  /** Liveness: answering at all proves the process and its event loop run. Redis is deliberately not asked. */
  live(): Promise<HealthCheckResult> {
    return this.health.check([async () => this.indicator.check('event_loop').up({ lag_ms: await eventLoopLagMs(), uptime_s: Math.round(process.uptime()) })]);
  }

  /** Readiness: traffic should come here only while every check is up. Rejects with a 503 naming each failing check. */
  ready(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.check('redis', this.connection.connected, 'Redis is unreachable'),
      () => this.models(),
      () => this.check('accepting', this.pending.accepting, 'the gateway is shutting down'),
    ]);
  }

  /**
   * Up once the models found at boot were loaded (or failed) and the worker pool runs; with STRICT_READINESS, only
   * while no model is failed or loading too. Either way the details name each such model and why.
   */
  private models(): HealthIndicatorResult {
    const models = this.registry.list();
    const unready = new Map(models.filter((m) => m.state === ModelState.FAILED || m.state === ModelState.LOADING).map((m) => [m.id, m.reason ?? m.state]));
    // The catalog's models that did not load here count as failed, as models found at boot do.
    for (const [id, reason] of Object.entries(this.fleet.failures())) if (!unready.has(id)) unready.set(id, reason);
    const data = {
      loaded: models.filter((m) => m.state === ModelState.READY).length,
      worker_threads: this.registry.slots,
      ...(unready.size > 0 && { unready: Object.fromEntries(unready) }),
    };
    if (!this.registry.ready) return this.check('models', false, 'the models or the worker pool are not loaded yet (or already released)', data);
    if (this.connection.connected && !this.fleet.ready) return this.check('models', false, "the fleet catalog's models are not loaded yet", data);
    const named = [...unready].map(([id, reason]) => `model '${id}' is ${reason === 'loading' ? 'loading' : `failed (${reason})`}`).join(', ');
    return this.check('models', !this.config.STRICT_READINESS || unready.size === 0, `${named}; STRICT_READINESS=true needs every model ready`, data);
  }

  private check(key: string, ok: boolean, whyNot: string, data: Record<string, unknown> = {}): HealthIndicatorResult {
    const session = this.indicator.check(key);
    return ok ? session.up(data) : session.down({ message: whyNot, ...data });
  }
}
