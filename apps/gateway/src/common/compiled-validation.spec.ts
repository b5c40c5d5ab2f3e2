import { plainToInstance } from 'class-transformer';
import { IsInt, IsOptional, ValidateNested, validateSync } from 'class-validator';
import { InferRequestDto } from '../infer/dto/infer-request.dto';
import { V2InferRequestDto, V2InputTensorDto, V2ParametersDto, V2RequestedOutputDto } from '../v2/dto/v2-infer-request.dto';
import { compileReader } from './compiled-validation';

/** A small deterministic generator, so a failure names a seed that reproduces it. */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

const VALUES: unknown[] = [
  undefined, null, 0, 1, 2, 3, -1, 0.5, 1e9, Number.MAX_SAFE_INTEGER, NaN, Infinity, '', '1', 'stub_v1', 'a.b-c_d', '../x', ' x', 'x'.repeat(128), 'x'.repeat(129),
  'classification', 'regression', 'embedding', 'raw', 'poem', true, false, [], [1], {}, { input: [1, 2] }, { input: 'x' }, { constructor: 1 },
];
const FIELDS = ['model_id', 'model_type', 'priority', 'timeout_ms', 'payload', 'extra', 'toString'];
const GOOD: Record<string, unknown> = { model_id: 'stub_v1', model_type: 'raw', priority: 2, timeout_ms: 500, payload: { input: [1] } };

const classValidatorAccepts = (dto: object) => validateSync(dto, { whitelist: true, forbidNonWhitelisted: true }).length === 0;

describe('compileReader on a flat DTO', () => {
  const read = compileReader(InferRequestDto)!;
  const accepts = (dto: object) => read({ ...dto }) !== undefined;

  it('agrees with class-validator on every one of 20,000 generated /infer bodies, valid and not', () => {
    const rand = random(7);
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      const body: Record<string, unknown> = {};
      for (const f of FIELDS) {
        if (rand() >= (f === 'extra' || f === 'toString' ? 0.05 : 0.7)) continue;
        body[f] = f in GOOD && rand() < 0.8 ? GOOD[f] : VALUES[Math.floor(rand() * VALUES.length)];
      }
      const dto = Object.assign(new InferRequestDto(), body);
      const expected = classValidatorAccepts(dto);
      if (accepts(dto) !== expected) throw new Error(`disagrees with class-validator (${expected}) on ${JSON.stringify(body)}`);
      if (expected) valid++;
    }
    // Both outcomes were exercised, many times.
    expect(valid).toBeGreaterThan(2_000);
    expect(valid).toBeLessThan(18_000);
  });

  it('accepts the documented request and refuses each kind of mistake', () => {
    const dto = (body: object) => Object.assign(new InferRequestDto(), body);
    expect(accepts(dto({ model_id: 'stub_v1', model_type: 'classification', priority: 2, timeout_ms: 500, payload: { input: [0.1] } }))).toBe(true);
    expect(accepts(dto({ payload: { input: [] } }))).toBe(true);
    for (const wrong of [{}, { payload: [] }, { payload: {}, priority: 0 }, { payload: {}, priority: 1.5 }, { payload: {}, model_id: '../x' }, { payload: {}, model_type: 'poem' }, { payload: {}, extra: 1 }]) {
      expect(accepts(dto(wrong))).toBe(false);
    }
  });

  it('declines to compile what it does not reproduce, leaving it to class-validator', () => {
    class Nested {
      @ValidateNested()
      child?: object;
    }
    class Grouped {
      @IsOptional()
      @IsInt({ groups: ['admin'] })
      n?: number;
    }
    expect(compileReader(Nested)).toBeUndefined();
    expect(compileReader(Grouped)).toBeUndefined();
  });
});

describe('compileReader on a nested DTO (V2 infer)', () => {
  const read = compileReader(V2InferRequestDto)!;
  const pick = <T>(rand: () => number, list: T[]) => list[Math.floor(rand() * list.length)];
  const INPUT: Record<string, unknown> = { name: 'input', shape: [1, 128], datatype: 'FP32', data: [0.5], parameters: { binary_data_size: 512 } };
  const INPUT_VALUES: Record<string, unknown[]> = {
    name: [undefined, null, 1, '', 'x'.repeat(257), []],
    shape: [undefined, null, 'x', [1.5], [-1], [1, 'a'], Array(33).fill(1), {}, [[1]]],
    datatype: [undefined, null, 'FP16', 1, 'fp32', 'BYTES'],
    data: [undefined, null, 'x', {}, 1, [[1, 2]], [{ a: 1 }]],
    parameters: [undefined, null, [], 'x', 1, {}],
  };
  const input = (rand: () => number) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(INPUT)) if (rand() < 0.9) out[k] = rand() < 0.85 ? v : pick(rand, INPUT_VALUES[k]);
    if (rand() < 0.03) out.extra = 1;
    return out;
  };
  const body = (rand: () => number) => {
    const out: Record<string, unknown> = {};
    if (rand() < 0.3) out.id = rand() < 0.8 ? 'req-1' : pick(rand, [1, null, 'x'.repeat(257), {}]);
    if (rand() < 0.4) out.parameters = rand() < 0.7 ? { priority: pick(rand, [1, 2, 3]), ...(rand() < 0.3 && { binary_data_output: pick(rand, [true, false, 'yes']) }) } : pick(rand, [null, [], 1, { priority: 0 }, { priority: 1.5 }, { timeout_ms: -1 }, { other: 1 }]);
    if (rand() < 0.95) out.inputs = rand() < 0.9 ? Array.from({ length: 1 + Math.floor(rand() * 3) }, () => input(rand)) : pick(rand, [[], null, {}, 'x', [1], [null], [[INPUT]], Array(65).fill(INPUT)]);
    if (rand() < 0.2) out.outputs = rand() < 0.7 ? [{ name: 'probabilities', ...(rand() < 0.5 && { parameters: { binary_data: true } }) }] : pick(rand, [null, {}, [{}], [{ name: 1 }], [{ name: 'x', extra: 1 }], [1]]);
    if (rand() < 0.03) out.extra = 1;
    return out;
  };

  it('agrees with class-transformer and class-validator on every one of 20,000 generated V2 bodies, and builds the same instance', () => {
    const rand = random(11);
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      const b = body(rand);
      const expected = plainToInstance(V2InferRequestDto, structuredClone(b));
      const accepted = classValidatorAccepts(expected);
      const got = read(b);
      if ((got !== undefined) !== accepted) throw new Error(`disagrees with class-validator (${accepted}) on ${JSON.stringify(b)}`);
      if (!got) continue;
      valid++;
      expect(got).toEqual(expected);
    }
    expect(valid).toBeGreaterThan(2_000);
    expect(valid).toBeLessThan(18_000);
  });

  it('builds instances of the nested classes, in the order of the body', () => {
    const dto = read({ parameters: { priority: 1 }, inputs: [{ ...INPUT, name: 'a' }, { ...INPUT, name: 'b' }], outputs: [{ name: 'probabilities' }] }) as V2InferRequestDto;
    expect(dto).toBeInstanceOf(V2InferRequestDto);
    expect(dto.parameters).toBeInstanceOf(V2ParametersDto);
    expect(dto.inputs.map((x) => [x instanceof V2InputTensorDto, x.name])).toEqual([
      [true, 'a'],
      [true, 'b'],
    ]);
    expect(dto.outputs![0]).toBeInstanceOf(V2RequestedOutputDto);
  });
});
