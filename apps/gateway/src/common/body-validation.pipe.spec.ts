import { BadRequestException } from '@nestjs/common';
import { InferRequestDto } from '../infer/dto/infer-request.dto';
import { BodyValidationPipe, MAX_BODY_DEPTH, nestsDeeperThan } from './body-validation.pipe';

const nested = (depth: number) => JSON.parse('['.repeat(depth) + '1' + ']'.repeat(depth));

describe('nestsDeeperThan', () => {
  it('accepts a body as deep as the limit and refuses one level more, for arrays and objects', () => {
    expect(nestsDeeperThan(nested(4), 4)).toBe(false);
    expect(nestsDeeperThan(nested(5), 4)).toBe(true);
    expect(nestsDeeperThan({ payload: { input: [[1, 2]] } }, 4)).toBe(false);
    expect(nestsDeeperThan({ payload: { input: [[[1]]] } }, 4)).toBe(true);
  });

  it('walks a body far deeper than the call stack allows without overflowing', () => {
    expect(nestsDeeperThan(nested(200_000), 32)).toBe(true);
  });

  it('treats scalars and null as depth zero', () => {
    for (const v of [null, 1, 'x', true, undefined]) expect(nestsDeeperThan(v, 0)).toBe(false);
  });
});

describe('BodyValidationPipe', () => {
  const pipe = new BodyValidationPipe();
  const asBody = (value: unknown) => pipe.transform(value, { type: 'body', metatype: InferRequestDto });

  it('validates a flat DTO on a shallow copy: the instance holds the client’s own payload object', async () => {
    const body = { payload: { input: [1, 2] }, priority: 1 };
    const dto = await asBody(body);
    expect(dto).toBeInstanceOf(InferRequestDto);
    expect(dto.payload).toBe(body.payload);
  });

  it('refuses, with 400, what would crash validation: deep nesting and a top-level constructor key', async () => {
    await expect(asBody({ payload: { input: nested(MAX_BODY_DEPTH) } })).rejects.toThrow(`nests deeper than ${MAX_BODY_DEPTH} levels`);
    await expect(asBody({ payload: { input: [1] }, constructor: 1 })).rejects.toThrow('property constructor should not exist');
    await expect(asBody([1])).rejects.toThrow('the request body must be a JSON object');
  });

  it('names every failing field in one message', async () => {
    const refusal = asBody({ priority: 0.5, extra: 1 });
    await expect(refusal).rejects.toThrow(BadRequestException);
    await expect(refusal).rejects.toThrow(
      'extra: property extra should not exist; priority must be at least 1; priority must be an integer; payload is required; payload must be an object',
    );
  });
});
