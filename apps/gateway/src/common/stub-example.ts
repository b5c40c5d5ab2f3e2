/** 128 floats: exactly what the shipped stub model takes, so the documented examples run as they are. */
export const STUB_EXAMPLE_INPUT: readonly number[] = Array.from({ length: 128 }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000);
