import type { WarmupInput, WarmupSample, WarmupSetting } from './protocol';

/** The most values one warm-up input may hold: each worker thread builds every sample. */
export const MAX_WARMUP_VALUES = 1 << 24;

const FILLS = ['zeros', 'random'] as const;

/** Refuses a field, naming it by its path in config.json. */
const fail = (path: string, what: string): never => {
  throw new Error(`${path} ${what}`);
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads config.json's `warmup`: absent or true for inputs the gateway makes up, false for none, or a list of
 * samples, each giving every input as `{"zeros": shape}`, `{"random": shape}` or `{"data": values}` (nested arrays,
 * or a scalar; with `"shape"`, flat values in row-major order). Throws naming the field that is wrong.
 */
export function parseWarmup(value: unknown): WarmupSetting {
  if (value === undefined || value === true) return undefined;
  if (value === false) return false;
  if (!Array.isArray(value) || value.length === 0) return fail('warmup', 'must be false, or a non-empty list of samples');
  return value.map((sample, i) => parseSample(sample, `warmup[${i}]`));
}

function parseSample(sample: unknown, path: string): WarmupSample {
  if (!isObject(sample)) return fail(path, 'must be an object with "inputs"');
  const extra = Object.keys(sample).find((k) => k !== 'name' && k !== 'inputs');
  if (extra !== undefined) fail(`${path}.${extra}`, 'is not a warm-up sample field; a sample has "inputs" and an optional "name"');
  if (sample.name !== undefined && typeof sample.name !== 'string') fail(`${path}.name`, 'must be a string');
  const { inputs } = sample;
  if (!isObject(inputs) || Object.keys(inputs).length === 0) return fail(`${path}.inputs`, 'must be an object giving a value for each input by name');
  const parsed = Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, parseInput(input, `${path}.inputs.${name}`)]));
  return sample.name === undefined ? { inputs: parsed } : { name: sample.name as string, inputs: parsed };
}

function parseInput(input: unknown, path: string): WarmupInput {
  const kinds = isObject(input) ? [...FILLS, 'data'].filter((k) => k in input) : [];
  if (!isObject(input) || kinds.length !== 1) return fail(path, 'must be one of {"zeros": shape}, {"random": shape} or {"data": values}');
  const extra = Object.keys(input).find((k) => k !== kinds[0] && !(k === 'shape' && kinds[0] === 'data'));
  if (extra !== undefined) fail(`${path}.${extra}`, kinds[0] === 'data' ? 'is not allowed; "data" takes an optional "shape"' : `is not allowed beside "${kinds[0]}"`);
  const fill = FILLS.find((f) => f === kinds[0]);
  if (fill) return { fill, shape: parseShape(input[fill], `${path}.${fill}`) };
  const { values, shape: nested } = flatten(input.data, `${path}.data`);
  const shape = input.shape === undefined ? nested : parseShape(input.shape, `${path}.shape`);
  if (countOf(shape) !== values.length) fail(`${path}.data`, `holds ${values.length} values; shape [${shape.join(', ')}] takes ${countOf(shape)}`);
  return { shape, values };
}

const countOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function parseShape(shape: unknown, path: string): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) return fail(path, 'must be a shape: a list of sizes, whole numbers from 0 up');
  if (countOf(shape) > MAX_WARMUP_VALUES) fail(path, `holds ${countOf(shape)} values, over ${MAX_WARMUP_VALUES}`);
  return shape;
}

/** Nested arrays of numbers or booleans, as flat values and the shape their nesting gives; a scalar has shape []. */
function flatten(data: unknown, path: string): { values: (number | boolean)[]; shape: number[] } {
  if (typeof data === 'number' || typeof data === 'boolean') return { values: [data], shape: [] };
  if (!Array.isArray(data) || data.length === 0) return fail(path, 'must be a number, a boolean, or nested arrays of them');
  const rows = data.map((d, i) => flatten(d, `${path}[${i}]`));
  const inner = rows[0].shape.join(',');
  const ragged = rows.findIndex((r) => r.shape.join(',') !== inner);
  if (ragged >= 0) fail(`${path}[${ragged}]`, `has shape [${rows[ragged].shape.join(', ')}], unlike [${rows[0].shape.join(', ')}] before it`);
  const values = rows.flatMap((r) => r.values);
  if (values.length > MAX_WARMUP_VALUES) fail(path, `holds more than ${MAX_WARMUP_VALUES} values`);
  return { values, shape: [data.length, ...rows[0].shape] };
}
