import { Transform, plainToInstance } from 'class-transformer';
import { availableParallelism } from 'node:os';
import { IsBoolean, IsIn, IsInt, IsNumber, IsString, Matches, Max, Min, MinLength, validateSync } from 'class-validator';

const toNumber = ({ value }: { value: unknown }) => (typeof value === 'string' && value.trim() !== '' ? Number(value) : value);
const toBoolean = ({ value }: { value: unknown }) => {
  if (typeof value !== 'string') return value;
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  return value;
};

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const METRICS_TIME_UNITS = ['seconds', 'ms'] as const;
export type MetricsTimeUnit = (typeof METRICS_TIME_UNITS)[number];

/**
 * Every setting BALES reads, with its default. Names and defaults of the original BALES are kept.
 * Loaded once at boot by loadConfig(); nothing else reads the environment.
 */
export class BalesConfig {
  /** Redis connection string (redis:// or rediss:// for TLS). */
  @Matches(/^rediss?:\/\/[^\s]+$/, { message: 'must be a redis:// or rediss:// URL' })
  REDIS_URL = 'redis://localhost:6379/0';

  /** Maximum rows per batch. */
  @Transform(toNumber) @IsInt({ message: 'must be an integer from 1 to 4096' }) @Min(1, { message: 'must be an integer from 1 to 4096' }) @Max(4096, { message: 'must be an integer from 1 to 4096' })
  MAX_BATCH_SIZE = 32;

  /** Longest a row waits for its batch to fill, in milliseconds. */
  @Transform(toNumber) @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number of milliseconds from 0 to 10000' }) @Min(0, { message: 'must be a number of milliseconds from 0 to 10000' }) @Max(10000, { message: 'must be a number of milliseconds from 0 to 10000' })
  BATCH_WINDOW_MS = 5.0;

  /** A request not answered within this many seconds gets 504. */
  @Transform(toNumber) @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number of seconds above 0 and at most 3600' }) @Min(0.001, { message: 'must be a number of seconds above 0 and at most 3600' }) @Max(3600, { message: 'must be a number of seconds above 0 and at most 3600' })
  BATCHER_TIMEOUT_S = 5.0;

  /** Model used when a request names none. */
  @IsString() @MinLength(1, { message: 'must be a non-empty model id' })
  DEFAULT_MODEL_ID = 'stub_v1';

  /**
   * Worker threads running ONNX Runtime sessions: one per core by default (the original's 4 oversubscribes small
   * machines, and the threads then preempt each other mid-batch; docs/configuration.md).
   */
  @Transform(toNumber) @IsInt({ message: 'must be an integer from 1 to 64' }) @Min(1, { message: 'must be an integer from 1 to 64' }) @Max(64, { message: 'must be an integer from 1 to 64' })
  THREAD_POOL_SIZE = Math.min(64, availableParallelism());

  /** ONNX Runtime intra-op threads per session; 0 divides the machine's cores among the worker threads. */
  @Transform(toNumber) @IsInt({ message: 'must be an integer from 0 to 64' }) @Min(0, { message: 'must be an integer from 0 to 64' }) @Max(64, { message: 'must be an integer from 0 to 64' })
  ORT_INTRA_OP_THREADS = 0;

  @IsString() @MinLength(1, { message: 'must be a host name or address' })
  HOST = '0.0.0.0';

  @Transform(toNumber) @IsInt({ message: 'must be a port from 0 to 65535' }) @Min(0, { message: 'must be a port from 0 to 65535' }) @Max(65535, { message: 'must be a port from 0 to 65535' })
  PORT = 8000;

  @IsIn(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` })
  LOG_LEVEL: LogLevel = 'info';

  @Transform(toBoolean) @IsBoolean({ message: 'must be true or false' })
  ENABLE_PROMETHEUS = true;

  /** Unit of the three time histograms: seconds, Prometheus's base unit, or ms for the original BALES's metric names. */
  @IsIn(METRICS_TIME_UNITS, { message: `must be one of ${METRICS_TIME_UNITS.join(', ')}` })
  METRICS_TIME_UNIT: MetricsTimeUnit = 'seconds';

  /** Folder holding the model repository; each sub-folder with a model.onnx is served at boot. */
  @IsString() @MinLength(1, { message: 'must be a folder path' })
  MODELS_DIR = './models';

  /**
   * When true, as Triton's strict readiness, /health/ready answers 200 only while every model in the repository is
   * ready; when false, once Redis answers and the models that loaded are up, whatever failed beside them.
   */
  @Transform(toBoolean) @IsBoolean({ message: 'must be true or false' })
  STRICT_READINESS = true;

  /** Priorities run from 1 (most urgent) to PRIORITY_LEVELS. */
  @Transform(toNumber) @IsInt({ message: 'must be an integer from 1 to 10' }) @Min(1, { message: 'must be an integer from 1 to 10' }) @Max(10, { message: 'must be an integer from 1 to 10' })
  PRIORITY_LEVELS = 3;

  /**
   * Largest accepted request body, in bytes: 8 MiB, so a 3x224x224 float32 image fits as JSON (about 3 MB at
   * full precision); the original's 1 MiB refused it.
   */
  @Transform(toNumber) @IsInt({ message: 'must be a byte count from 1024 to 104857600' }) @Min(1024, { message: 'must be a byte count from 1024 to 104857600' }) @Max(104857600, { message: 'must be a byte count from 1024 to 104857600' })
  MAX_BODY_BYTES = 8388608;

  /** Prefix of every Redis key and channel, so several deployments can share one Redis. */
  @Matches(/^[A-Za-z0-9_.{}-]+$/, { message: 'must be letters, digits, _ . - { }' })
  QUEUE_PREFIX = 'bales';

  /** Queued rows allowed per model before /infer answers 429; about 2 s of work at the stub's saturated rate. */
  @Transform(toNumber) @IsInt({ message: 'must be an integer from 1 to 1000000' }) @Min(1, { message: 'must be an integer from 1 to 1000000' }) @Max(1000000, { message: 'must be an integer from 1 to 1000000' })
  MAX_QUEUE_DEPTH = 10000;

  /** On SIGTERM/SIGINT, how long accepted requests may take to be answered before the process exits. */
  @Transform(toNumber) @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number of seconds from 0 to 3600' }) @Min(0, { message: 'must be a number of seconds from 0 to 3600' }) @Max(3600, { message: 'must be a number of seconds from 0 to 3600' })
  SHUTDOWN_TIMEOUT_S = 20;

  /** Replace the worker threads when RSS has grown this many percent since boot (or the last recycle) after a reload; 0 never. */
  @Transform(toNumber) @IsInt({ message: 'must be an integer percentage from 0 to 1000' }) @Min(0, { message: 'must be an integer percentage from 0 to 1000' }) @Max(1000, { message: 'must be an integer percentage from 0 to 1000' })
  WORKER_RECYCLE_RSS_GROWTH_PCT = 25;

  /**
   * When set, mutating Models API calls need `Authorization: Bearer <ADMIN_TOKEN>`; when empty, they are answered
   * only from loopback.
   */
  @IsString()
  ADMIN_TOKEN = '';

  /** When false this replica only accepts and answers requests; other replicas run its queued work. */
  @Transform(toBoolean) @IsBoolean({ message: 'must be true or false' })
  PROCESSOR_ENABLED = true;

  /**
   * When true, a request that finds this replica's processor idle (its fetch waiting on an empty queue, a worker
   * thread free) runs at once, without the round trips through Redis; otherwise every request is queued.
   */
  @Transform(toBoolean) @IsBoolean({ message: 'must be true or false' })
  DIRECT_DISPATCH = true;

  /**
   * A replica's heartbeat lives this long in Redis (it is renewed every fifth of it): past it, a replica that was
   * killed or cut off no longer counts as live, and fleet-wide Models API calls stop waiting for it.
   */
  @Transform(toNumber) @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number of seconds from 1 to 600' }) @Min(1, { message: 'must be a number of seconds from 1 to 600' }) @Max(600, { message: 'must be a number of seconds from 1 to 600' })
  FLEET_HEARTBEAT_TTL_S = 5;

  /** How long a fleet-wide Models API call waits for every live replica to load a model (each phase). */
  @Transform(toNumber) @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'must be a number of seconds from 1 to 3600' }) @Min(1, { message: 'must be a number of seconds from 1 to 3600' }) @Max(3600, { message: 'must be a number of seconds from 1 to 3600' })
  FLEET_CALL_TIMEOUT_S = 120;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads and validates the environment once. Throws a ConfigError naming every bad variable on one line. */
export function loadConfig(env: Record<string, string | undefined>): BalesConfig {
  const known = Object.keys(new BalesConfig());
  const given = Object.fromEntries(known.filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]));
  const config = plainToInstance(BalesConfig, given, { exposeDefaultValues: true });
  const errors = validateSync(config, { forbidUnknownValues: false });
  if (errors.length > 0) {
    const problems = errors.map((e) => `${e.property}=${JSON.stringify(given[e.property])} ${Object.values(e.constraints ?? {})[0]}`);
    throw new ConfigError(`Invalid configuration: ${problems.join('; ')}`);
  }
  return config;
}
