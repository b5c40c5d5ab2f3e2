import { Injectable } from '@nestjs/common';
import { ModelInfo, ModelRegistry, ReloadOutcome, UnloadOutcome } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { RegisterModelDto } from './dto/register-model.dto';
import { ReloadModelDto } from './dto/reload-model.dto';

/** The management API's work: the registry's calls, with each reload counted by its outcome. */
@Injectable()
export class ModelsService {
  constructor(
    private readonly registry: ModelRegistry,
    private readonly metrics: BalesMetrics,
  ) {}

  list(): ModelInfo[] {
    return this.registry.list();
  }

  get(id: string): ModelInfo {
    return this.registry.get(id);
  }

  register(body: RegisterModelDto): Promise<ModelInfo> {
    return this.registry.register({ id: body.model_id, weightsPath: body.weights_path, task: body.task, labels: body.labels, maxBatchSize: body.max_batch_size });
  }

  async reload(id: string, body: ReloadModelDto): Promise<ReloadOutcome> {
    // Only registered ids become label values, so made-up ids cannot grow the series.
    const label = this.registry.has(id) ? id : 'unknown';
    try {
      const outcome = await this.registry.reload(id, body.weights_path, body.allow_signature_change ?? false);
      this.metrics.reload(label, 'ok');
      return outcome;
    } catch (err) {
      this.metrics.reload(label, 'failed');
      throw err;
    }
  }

  unregister(id: string): Promise<UnloadOutcome> {
    return this.registry.unregister(id);
  }
}
