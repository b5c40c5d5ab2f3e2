import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BalesConfig, MetricsTimeUnit } from '@bales/config';

/** Millisecond buckets: fine from 1 to 50 ms, where a served request lives, then coarse up to the longest timeout. */
export const MS_BUCKETS = [0.5, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25, 30, 35, 40, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10000, 30000];
/** Rows per batch, up to MAX_BATCH_SIZE's bound. */
export const BATCH_SIZE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512, 1024, 4096];

/**
 * How the three time histograms are exported. Seconds, Prometheus's base unit, is what `promtool check metrics` accepts;
 * ms keeps the original BALES's names, help texts and buckets for dashboards built against it. Callers always pass ms.
 */
const TIME_UNITS: Record<MetricsTimeUnit, { suffix: string; words: string; msPerUnit: number }> = {
  seconds: { suffix: 'seconds', words: 'seconds', msPerUnit: 1000 },
  ms: { suffix: 'ms', words: 'milliseconds', msPerUnit: 1 },
};

const NOT_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Rows queued for one model at one priority. */
export interface QueueDepthSample {
  modelId: string;
  priority: number;
  rows: number;
}

/** A replica's worker threads: the milliseconds they have spent running batches since boot, and how many there are. */
export interface WorkerLoad {
  busyMs: number;
  threads: number;
}

/** One model's state on this replica. */
export interface ModelStateSample {
  modelId: string;
  state: string;
}

export type ReloadResult = 'ok' | 'failed';

/**
 * Every BALES metric, in one registry per gateway (so several gateways in one process, as in tests, never share
 * counts). Recording is a counter increment or one histogram observation; gauges that mirror state are read only
 * when Prometheus scrapes.
 */
@Injectable()
export class BalesMetrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'bales_requests_total',
    help: 'Inference requests (POST /infer and the V2 infer endpoints) answered, by model_id and HTTP status',
    labelNames: ['model_id', 'status'] as const,
    registers: [this.registry],
  });
  private readonly latency: Histogram;
  private readonly batchSize = this.histogram('bales_batch_size', 'Rows in each batch run on ONNX Runtime', BATCH_SIZE_BUCKETS);
  private readonly queueWait: Histogram;
  private readonly inference: Histogram;
  /** What each millisecond value a caller passes is divided by before it is observed. */
  private readonly msPerUnit: number;
  private readonly reloads = new Counter({
    name: 'bales_model_reloads_total',
    help: 'Model hot swaps (POST /models/:id/reload), by model_id and result (ok or failed)',
    labelNames: ['model_id', 'result'] as const,
    registers: [this.registry],
  });
  private readonly rejections = new Counter({
    name: 'bales_rejected_total',
    help: 'Requests ended by an error, by reason (the error code, e.g. queue_full, timeout, client_closed, invalid_input)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly directRows = new Counter({
    name: 'bales_direct_rows_total',
    help: 'Requests taken straight into the batches of the replica that accepted them, with no job waiting in Redis (DIRECT_DISPATCH), rather than queued there',
    registers: [this.registry],
  });
  private readonly requestCounters = new Map<string, { inc(): void }>();
  private pendingSource: () => number = () => 0;
  private depthSource: () => QueueDepthSample[] = () => [];
  private modelStates: { states: readonly string[]; source: () => ModelStateSample[] } = { states: [], source: () => [] };
  private replicasSource: () => number = () => 0;
  private workerLoadSource: () => WorkerLoad = () => ({ busyMs: 0, threads: 0 });

  constructor(config: BalesConfig) {
    const { suffix, words, msPerUnit } = TIME_UNITS[config.METRICS_TIME_UNIT];
    const buckets = MS_BUCKETS.map((ms) => ms / msPerUnit);
    this.msPerUnit = msPerUnit;
    this.latency = this.histogram(`bales_request_latency_${suffix}`, `End-to-end latency of inference requests inside the gateway, in ${words}`, buckets);
    this.queueWait = this.histogram(`bales_queue_wait_${suffix}`, `Time each row waited from enqueueing until its batch started, in ${words}`, buckets);
    this.inference = this.histogram(`bales_inference_${suffix}`, `Time ONNX Runtime took to run one batch, in ${words}`, buckets);
    const metrics = this;
    new Gauge({
      name: 'bales_pending_requests',
      help: 'Requests this replica accepted and has not answered yet',
      registers: [this.registry],
      collect() {
        this.set(metrics.pendingSource());
      },
    });
    new Gauge({
      name: 'bales_queue_depth',
      help: 'Rows queued in Redis and not yet taken by a processor, by model_id and priority, across all replicas',
      labelNames: ['model_id', 'priority'] as const,
      registers: [this.registry],
      collect() {
        // Reset first, so a model whose queue emptied (or was unloaded) stops being reported.
        this.reset();
        for (const s of metrics.depthSource()) this.set({ model_id: s.modelId, priority: s.priority }, s.rows);
      },
    });
    new Gauge({
      name: 'bales_model_state',
      help: 'Each model this replica knows, by model_id and state (loading, ready, failed, draining): 1 for its state, 0 for the others',
      labelNames: ['model_id', 'state'] as const,
      registers: [this.registry],
      collect() {
        // Reset first, so a deleted model stops being reported.
        this.reset();
        const { states, source } = metrics.modelStates;
        for (const m of source()) for (const state of states) this.set({ model_id: m.modelId, state }, m.state === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'bales_fleet_replicas',
      help: 'Live replicas sharing this Redis (heartbeat within FLEET_HEARTBEAT_TTL_S), this one included, as this replica last read them',
      registers: [this.registry],
      collect() {
        this.set(metrics.replicasSource());
      },
    });
    let busyMsCounted = 0;
    new Counter({
      name: `bales_worker_busy_${suffix}_total`,
      help: `Worker-thread ${words} spent running batches; its rate over bales_worker_threads is the share of time they were busy`,
      registers: [this.registry],
      collect() {
        const { busyMs } = metrics.workerLoadSource();
        if (busyMs > busyMsCounted) this.inc((busyMs - busyMsCounted) / msPerUnit);
        busyMsCounted = Math.max(busyMsCounted, busyMs);
      },
    });
    new Gauge({
      name: 'bales_worker_threads',
      help: 'Worker threads running ONNX Runtime on this replica (THREAD_POOL_SIZE)',
      registers: [this.registry],
      collect() {
        this.set(metrics.workerLoadSource().threads);
      },
    });
    // Node's process metrics sample on timers of their own: only worth it when someone scrapes them.
    if (config.ENABLE_PROMETHEUS) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges named like counters, which promtool rejects; nodejs_active_{handles,requests,resources} by type remain.
      for (const name of NOT_COUNTERS) this.registry.removeSingleMetric(name);
    }
  }

  /** One answered POST /infer. */
  request(modelId: string, status: number, latencyMs: number): void {
    // prom-client hashes a labels object on every inc(); the labelled child is looked up once per model and status.
    const key = `${modelId}\u0000${status}`;
    let counter = this.requestCounters.get(key);
    if (!counter) {
      counter = this.requests.labels({ model_id: modelId, status });
      this.requestCounters.set(key, counter);
    }
    counter.inc();
    this.latency.observe(latencyMs / this.msPerUnit);
  }

  /** One batch run on ONNX Runtime. */
  batch(rows: number, inferenceMs: number): void {
    this.batchSize.observe(rows);
    this.inference.observe(inferenceMs / this.msPerUnit);
  }

  /** How long one row waited in the queue before its batch started. */
  queued(waitMs: number): void {
    this.queueWait.observe(waitMs / this.msPerUnit);
  }

  /** One request run at once by its own replica, without a queue round trip. */
  directRow(): void {
    this.directRows.inc();
  }

  reload(modelId: string, result: ReloadResult): void {
    this.reloads.inc({ model_id: modelId, result });
  }

  rejected(reason: string): void {
    this.rejections.inc({ reason });
  }

  /** Where bales_pending_requests is read from at scrape time. */
  readPendingFrom(source: () => number): void {
    this.pendingSource = source;
  }

  /** Where bales_queue_depth is read from at scrape time. */
  readQueueDepthFrom(source: () => QueueDepthSample[]): void {
    this.depthSource = source;
  }

  /** Where bales_model_state is read from at scrape time, and every state a model can be in. */
  readModelStatesFrom(states: readonly string[], source: () => ModelStateSample[]): void {
    this.modelStates = { states, source };
  }

  /** Where bales_fleet_replicas is read from at scrape time. */
  readReplicasFrom(source: () => number): void {
    this.replicasSource = source;
  }

  /** Where bales_worker_busy_seconds_total and bales_worker_threads are read from at scrape time. */
  readWorkerLoadFrom(source: () => WorkerLoad): void {
    this.workerLoadSource = source;
  }

  private histogram(name: string, help: string, buckets: number[]): Histogram {
    return new Histogram({ name, help, buckets, registers: [this.registry] });
  }
}
