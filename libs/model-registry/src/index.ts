export { ModelRegistryModule } from './model-registry.module';
export { MODEL_ID_PATTERN, ModelRegistry, ModelState } from './model-registry';
export type { Admission, BatchOutcome, ModelInfo, RegisterRequest, ReloadOutcome, TensorAdmission, UnloadOutcome } from './model-registry';
export type { EncodedRow, TensorInput } from './input-encoder';
export { TASKS } from './protocol';
export type { RowResult, Signature, Task, TensorSpec } from './protocol';
