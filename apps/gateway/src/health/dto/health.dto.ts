import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class HealthModelDto {
  @ApiProperty({ example: 'stub_v1' })
  id: string;

  @ApiProperty({ example: '1', description: 'Changes on every hot swap' })
  version: string;

  @ApiProperty({ example: 'classification' })
  task: string;

  @ApiProperty({ example: 'ready', enum: ['loading', 'ready', 'failed', 'draining'] })
  state: string;

  @ApiPropertyOptional({ example: 'cannot load vad/model.onnx: ONNX Runtime cannot parse it as an ONNX model (Protobuf parsing failed.)', description: 'Why a failed model did not load' })
  reason?: string;
}

export class WorkerPoolDto {
  @ApiProperty({ example: 4, description: 'THREAD_POOL_SIZE: worker threads running ONNX Runtime sessions' })
  threads: number;

  @ApiProperty({ example: 'up', enum: ['up', 'down'], description: 'down until the models are loaded in every thread, and again once shutdown released them' })
  state: 'up' | 'down';
}

export class ProcessorStatsDto {
  @ApiProperty({ example: true, description: 'PROCESSOR_ENABLED' })
  enabled: boolean;

  @ApiProperty({ example: 120, description: 'Batches this replica ran' })
  batches: number;

  @ApiProperty({ example: 3000, description: 'Rows those batches carried' })
  rows_run: number;

  @ApiProperty({ example: 0, description: 'Rows skipped unrun because their client was already answered' })
  rows_expired: number;
}

/** GET /health: the original details of one replica. */
/** A live replica of the fleet, from its heartbeat. */
export class FleetReplicaDto {
  @ApiProperty({ example: 'gw-a-4121-9f3c2e' })
  replica_id: string;

  @ApiProperty({ example: true, description: "Whether the replica's own readiness holds" })
  ready: boolean;

  @ApiProperty({ example: false, description: 'Shutting down: it takes no part in fleet calls' })
  draining: boolean;

  @ApiProperty({ format: 'date-time' })
  started_at: string;

  @ApiPropertyOptional({ example: 0.42, description: 'The share of time its worker threads ran batches over its last heartbeat interval; absent when it runs no processor' })
  busy?: number;

  @ApiProperty({ example: [{ id: 'stub_v1', version: '2', state: 'ready' }], description: 'The model versions it holds, with their states there' })
  models: { id: string; version: string; state: string }[];
}

export class HealthDto {
  @ApiProperty({ example: 'ok', enum: ['ok', 'degraded'], description: 'degraded while Redis is unreachable, the worker pool is down, or a model is failed' })
  status: 'ok' | 'degraded';

  @ApiProperty({ example: '0.1.0', description: 'Build version (package.json)' })
  version: string;

  @ApiProperty({ example: 'up', enum: ['up', 'down'] })
  redis: 'up' | 'down';

  @ApiProperty({ type: [HealthModelDto] })
  models: HealthModelDto[];

  @ApiProperty({
    description: 'Rows queued in Redis per model and priority (1 is most urgent), shared by every replica',
    example: { stub_v1: { '1': 0, '2': 12, '3': 0 } },
    type: 'object',
    additionalProperties: { type: 'object', additionalProperties: { type: 'integer' } },
  })
  queue_depths: Record<string, Record<string, number>>;

  @ApiProperty({ example: 0, description: 'Requests this replica accepted and has not answered yet' })
  pending_requests: number;

  @ApiProperty({ type: WorkerPoolDto })
  workers: WorkerPoolDto;

  @ApiProperty({ type: ProcessorStatsDto })
  processor: ProcessorStatsDto;

  @ApiProperty({ example: 3600 })
  uptime_s: number;

  @ApiProperty({ example: 'gw-a-4121-9f3c2e', description: "This replica's id in the fleet" })
  replica_id: string;

  @ApiProperty({ type: [FleetReplicaDto], description: 'Every live replica sharing this Redis (heartbeat within FLEET_HEARTBEAT_TTL_S), this one included' })
  replicas: FleetReplicaDto[];
}
