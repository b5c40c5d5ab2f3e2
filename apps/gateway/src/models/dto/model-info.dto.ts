import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { TASKS, type ReloadOutcome, type Task, type UnloadOutcome } from '@bales/model-registry';

export class TensorSpecDto {
  @ApiProperty({ example: 'input' })
  name: string;

  @ApiProperty({ example: 'float32' })
  type: string;

  @ApiProperty({ example: ['batch', 128], description: 'Dimensions; a string or -1 is free (the batch dimension)', type: 'array', items: { oneOf: [{ type: 'integer' }, { type: 'string' }] } })
  shape: (number | string)[];
}

export class SignatureDto {
  @ApiProperty({ type: [TensorSpecDto] })
  inputs: TensorSpecDto[];

  @ApiProperty({ type: [TensorSpecDto] })
  outputs: TensorSpecDto[];
}

export class WarmupReportDto {
  @ApiProperty({ enum: ['config', 'synthetic', 'off'], example: 'synthetic', description: "config: config.json's warmup samples; synthetic: inputs the gateway made up; off: warmup is false" })
  source: string;

  @ApiPropertyOptional({ example: 'no made-up input fits the model, so it is served unwarmed (...)', description: 'Why no made-up input fitted; the model is served, unwarmed' })
  warning?: string;
}

/** One served model, as GET /models lists it. */
export class ModelInfoDto {
  @ApiProperty({ example: 'stub_v1' })
  id: string;

  @ApiProperty({ example: '1', description: 'Changes on every hot swap' })
  version: string;

  @ApiProperty({ enum: TASKS, example: 'classification' })
  task: Task;

  @ApiPropertyOptional({ type: [String], description: 'Class names by index (classification)' })
  labels?: string[];

  @ApiProperty({ type: SignatureDto, description: 'Read from the ONNX file' })
  signature: SignatureDto;

  @ApiProperty({ example: 32, description: 'Rows per batch for this model' })
  maxBatchSize: number;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'integer', nullable: true },
    example: { input: 0, sr: null, h: 1, output: 0, hn: 1 },
    description: "Each input's and output's batch axis; null: none (an input fed once per batch, every row in it sharing its value)",
  })
  batchAxes: Record<string, number | null>;

  @ApiPropertyOptional({ example: 'no input has a dynamic dimension to batch along', description: 'Why the model runs one request per run, when its batch axes cannot be determined' })
  unbatchedReason?: string;

  @ApiProperty({ enum: ['loading', 'ready', 'failed', 'draining'], example: 'ready', description: 'failed: kept with its reason, answering 503 until it is loaded again or deleted' })
  state: string;

  @ApiPropertyOptional({ example: 'cannot load vad/model.onnx: ONNX Runtime cannot parse it as an ONNX model (Protobuf parsing failed.)', description: 'Why a failed model did not load' })
  reason?: string;

  @ApiPropertyOptional({ type: WarmupReportDto, description: 'How the current version was warmed; absent until it has loaded' })
  warmup?: WarmupReportDto;

  @ApiPropertyOptional({ format: 'date-time', description: 'When the current version loaded; absent while the model is failed or loading' })
  loadedAt?: string;

  @ApiProperty({ example: 1200 })
  requestsServed: number;

  @ApiProperty({ example: 0, description: 'Requests this replica accepted for the model and has not answered yet' })
  requestsPending: number;
}

/** One replica's part in a fleet-wide call. */
export class ReplicaOutcomeDto {
  @ApiProperty({ example: 'gw-a-4121-9f3c2e' })
  replica_id: string;
  @ApiPropertyOptional({ example: 212.5, description: 'Time this replica took to load and warm the weights' })
  load_ms?: number;
  @ApiPropertyOptional({ example: 3, description: 'Requests this replica had accepted when admission stopped; all were answered' })
  drained_requests?: number;
}

/** A live replica's copy of a model, from its heartbeat. */
export class ReplicaModelDto {
  @ApiProperty({ example: 'gw-a-4121-9f3c2e' })
  replica_id: string;
  @ApiProperty({ example: '2' })
  version: string;
  @ApiProperty({ enum: ['loading', 'ready', 'failed', 'draining'], example: 'ready' })
  state: string;
  @ApiProperty({ example: ['1', '2'], description: 'Every version whose sessions it holds: the served one, one being loaded by a reload, and old ones kept until no job queued under them is left' })
  held: string[];
  @ApiPropertyOptional({ example: 'stub_v2.onnx differs from the fleet\'s file for model \'stub_v1\' (...)' })
  reason?: string;
}

/** GET /models/:id: the model on the replica that answers, and every live replica's copy. */
export class ModelDetailDto extends ModelInfoDto {
  @ApiProperty({ type: [ReplicaModelDto], description: "Each live replica's version and state of the model" })
  replicas: ReplicaModelDto[];
}

/** POST /models: the model, and each replica's load time. */
export class RegisteredModelDto extends ModelInfoDto {
  @ApiProperty({ type: [ReplicaOutcomeDto], description: 'Every live replica loaded the model before the call answered' })
  replicas: ReplicaOutcomeDto[];
}

export class ReloadOutcomeDto {
  @ApiProperty({ example: 'stub_v1' })
  model_id: string;

  @ApiProperty({ example: '1' })
  old_version: string;

  @ApiProperty({ example: '2' })
  new_version: string;

  @ApiProperty({ example: 212.5, description: 'Time from the call to the fleet-wide switch: every live replica loaded and warmed the new weights' })
  load_ms: number;
  @ApiProperty({ type: [ReplicaOutcomeDto], description: "Each live replica's load time; all switched before the call answered" })
  replicas: ReplicaOutcomeDto[];
}

export class UnloadOutcomeDto {
  @ApiProperty({ example: 'stub_v1' })
  model_id: string;

  @ApiProperty({ example: '1' })
  version: string;

  @ApiProperty({ example: 0, description: 'Requests accepted before the unload began; all were answered' })
  drained_requests: number;

  @ApiProperty({ example: 3.2 })
  drain_ms: number;
  @ApiProperty({ type: [ReplicaOutcomeDto], description: 'Every live replica stopped admission and released the model' })
  replicas: ReplicaOutcomeDto[];
}

type Fleetwide = { replicas: ReplicaOutcomeDto[] };

export const toReloadOutcomeDto = (o: ReloadOutcome & Fleetwide): ReloadOutcomeDto => ({ model_id: o.modelId, old_version: o.oldVersion, new_version: o.newVersion, load_ms: o.loadMs, replicas: o.replicas });

export const toUnloadOutcomeDto = (o: UnloadOutcome & Fleetwide): UnloadOutcomeDto => ({ model_id: o.modelId, version: o.version, drained_requests: o.drainedRequests, drain_ms: o.drainMs, replicas: o.replicas });
