import { IsInt, IsOptional, ValidateNested, validateSync } from 'class-validator';
import { InferRequestDto } from '../infer/dto/infer-request.dto';
import { compileAcceptor } from './compiled-validation';

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

describe('compileAcceptor', () => {
  const accepts = compileAcceptor(InferRequestDto)!;
  const classValidatorAccepts = (dto: object) => validateSync(dto, { whitelist: true, forbidNonWhitelisted: true }).length === 0;

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
    expect(compileAcceptor(Nested)).toBeUndefined();
    expect(compileAcceptor(Grouped)).toBeUndefined();
  });
});
