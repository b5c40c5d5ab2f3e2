import type { InferOutcome, InferSubmission, InferenceQueue } from '@bales/queue';
import type { FakeModelRegistry } from './fake-model-registry';

/**
 * InferenceQueue.submit for unit tests of the services: no Redis, no batcher. Every submission is recorded; by default
 * each runs at once on the fake registry as a batch of its own. Set `answer` to hold, shape or fail them.
 */
export class FakeInferenceQueue implements Pick<InferenceQueue, 'submit'> {
  readonly submitted: InferSubmission[] = [];
  answer: (submission: InferSubmission) => Promise<InferOutcome>;

  constructor(private readonly registry: FakeModelRegistry) {
    this.answer = (s) => this.runAlone(s);
  }

  submit(submission: InferSubmission): Promise<InferOutcome> {
    this.submitted.push(submission);
    return this.answer(submission);
  }

  /** What a processor answers for one row run in a batch of one. */
  async runAlone(s: InferSubmission): Promise<InferOutcome> {
    const batch = await this.registry.run(s.modelId, [s.row], s.version);
    return { id: s.requestId, ok: true, model_id: s.modelId, model_version: batch.version, result: batch.results[0], batch_size: 1, queued_ms: 0 };
  }
}
