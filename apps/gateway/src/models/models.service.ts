import { Injectable } from '@nestjs/common';
import { Fleet, ReplicaModel, ReplicaOutcome } from '@bales/fleet';
import { ModelInfo, ModelRegistry, ReloadOutcome, UnloadOutcome } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { RegisterModelDto } from './dto/register-model.dto';
import { ReloadModelDto } from './dto/reload-model.dto';

/** The management API's work: reads from this replica's registry, changes made across the fleet, reloads counted by outcome. */
@Injectable()
export class ModelsService {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly fleet: Fleet,
    private readonly metrics: BalesMetrics,
  ) {}

  list(): ModelInfo[] {
    return this.registry.list();
  }

  /** The model on this replica, with each live replica's version and state of it. */
  get(id: string): ModelInfo & { replicas: ReplicaModel[] } {
    return { ...this.registry.get(id), replicas: this.fleet.replicasOf(id) };
  }

  async register(body: RegisterModelDto): Promise<ModelInfo & { replicas: ReplicaOutcome[] }> {
    const { model, replicas } = await this.fleet.register({ id: body.model_id, weightsPath: body.weights_path, task: body.task, labels: body.labels, maxBatchSize: body.max_batch_size });
    return { ...model, replicas };
  }

  async reload(id: string, body: ReloadModelDto): Promise<ReloadOutcome & { replicas: ReplicaOutcome[] }> {
    // Only registered ids become label values, so made-up ids cannot grow the series.
    const label = this.registry.has(id) ? id : 'unknown';
    try {
      const outcome = await this.fleet.reload(id, body.weights_path, body.allow_signature_change ?? false);
      this.metrics.reload(label, 'ok');
      return outcome;
    } catch (err) {
      this.metrics.reload(label, 'failed');
      throw err;
    }
  }

  unregister(id: string): Promise<UnloadOutcome & { replicas: ReplicaOutcome[] }> {
    return this.fleet.unregister(id);
  }
}
