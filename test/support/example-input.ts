/** The example row the tests and benchmarks send to the stub: 128 floats, as its input takes (the API docs show the same). */
export const EXAMPLE_INPUT = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
