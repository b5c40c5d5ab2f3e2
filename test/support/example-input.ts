import { STUB_EXAMPLE_INPUT } from '../../apps/gateway/src/common/stub-example';

/** The example row the tests and benchmarks send to the stub: the one the API docs show. */
export const EXAMPLE_INPUT = [...STUB_EXAMPLE_INPUT];
