export { ModelRegistryModule } from './model-registry.module';
export { ModelRegistry } from './model-registry';
export type { Admission, BatchOutcome, ModelInfo, ModelState, RegisterRequest, ReloadOutcome, TensorAdmission, TensorInput, UnloadOutcome } from './model-registry';
export type { EncodedRow } from './input-encoder';
export { TASKS } from './protocol';
export type { RowResult, Signature, Task, TensorSpec } from './protocol';
