export { ModelRegistryModule } from './model-registry.module';
export { ModelRegistry } from './model-registry';
export { batchKey } from './batch-axes';
export { ModelState } from './model-types';
export type { Admission, BatchOutcome, ModelInfo, PrepareRequest, RegisterRequest, ReloadOutcome, TensorAdmission, UnloadOutcome } from './model-types';
export { MODEL_ID_PATTERN, MODEL_ID_RULE } from './model-repository';
export type { EncodedRow, TensorInput } from './input-encoder';
export { TASKS } from './protocol';
export type { RowResult, Signature, Task, TensorSpec } from './protocol';
