import { BadRequestException } from '@nestjs/common';
import { LiftedArray, liftNumberArrays } from '@bales/model-registry';
import { InferRequestDto } from '../infer/dto/infer-request.dto';
import { V2InferRequestDto, V2InputTensorDto, V2RequestedOutputDto } from '../v2/dto/v2-infer-request.dto';
import { BodyValidationPipe, MAX_BODY_DEPTH, nestsDeeperThan } from './body-validation.pipe';

const nested = (depth: number) => JSON.parse('['.repeat(depth) + '1' + ']'.repeat(depth));

/** A body parsed as the gateway parses a large one: its numeric arrays lifted. */
function lifted(body: object): any {
  const text = liftNumberArrays(Buffer.from(JSON.stringify(body)))!;
  return JSON.parse(text.text, text.reviver);
}
const many = (n: number) => Array.from({ length: n }, (_, i) => i % 10);
/** 300 values nested `rank` levels deep. */
const deep = (rank: number): unknown => (rank === 1 ? many(300) : [deep(rank - 1)]);

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

  it('finds deep nesting behind numbers, where an array that starts with numbers holds more', () => {
    expect(nestsDeeperThan({ data: [1, 2, 3, nested(40)] }, 32)).toBe(true);
    expect(nestsDeeperThan({ data: [1, 2, { a: nested(40) }] }, 32)).toBe(true);
    expect(nestsDeeperThan({ data: [1, 2, 3, nested(4)] }, 32)).toBe(false);
  });

  it('counts a lifted array as deep as its dimensions', () => {
    expect(nestsDeeperThan(lifted({ payload: { input: deep(14) } }), 16)).toBe(false);
    expect(nestsDeeperThan(lifted({ payload: { input: deep(15) } }), 16)).toBe(true);
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

  it('keeps the lifted arrays of a flat DTO’s payload, and validates its own fields as the arrays they were', async () => {
    const body = lifted({ payload: { input: many(300) } });
    expect((await asBody(body)).payload.input).toBeInstanceOf(LiftedArray);
    await expect(asBody(lifted({ payload: many(300) }))).rejects.toThrow('payload must be an object');
  });

  describe('opaque arrays (the data of each V2 input)', () => {
    const asV2 = (value: unknown) => pipe.transform(value, { type: 'body', metatype: V2InferRequestDto });
    const input = (data: unknown) => ({ name: 'x', shape: [2, 2], datatype: 'FP32', data });

    it('hands the instance the client’s own arrays, flat or nested, after validating the rest', async () => {
      const flat = [1, 2, 3, 4];
      const nestedData = [[1, 2], [3, 4]];
      const body = { parameters: { priority: 1 }, inputs: [input(flat), input(nestedData)] };
      const dto = await asV2(body);
      expect(dto).toBeInstanceOf(V2InferRequestDto);
      expect(dto.inputs[0]).toBeInstanceOf(V2InputTensorDto);
      expect(dto.inputs[0].data).toBe(flat);
      expect(dto.inputs[1].data).toBe(nestedData);
      expect(body.inputs[0].data).toBe(flat);
    });

    it('gives every refusal as class-validator words it, and leaves the body’s arrays in place', async () => {
      const data = [1, 2, 3, 4];
      const body = { inputs: [{ ...input(data), name: 7, extra: 1 }] };
      await expect(asV2(body)).rejects.toThrow(
        'inputs.0.extra: property extra should not exist; inputs.0.name must be shorter than or equal to 256 characters; inputs.0.name: inputs[].name must be a string',
      );
      expect(body.inputs[0].data).toBe(data);
      await expect(asV2({ inputs: [input('1,2')] })).rejects.toThrow('inputs[].data must be an array');
      await expect(asV2({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32' }] })).rejects.toThrow('inputs[].data is required');
      // class-validator's nested check alone would walk into an array inside the list and pass it.
      await expect(asV2({ inputs: [[input([1, 2, 3, 4])]] })).rejects.toThrow('inputs must hold tensor objects, one per input');
      await expect(asV2({ inputs: [input([1, 2, 3, 4])], outputs: [[{ name: 'y' }]] })).rejects.toThrow('outputs must hold objects, one per output');
    });

    it('hands over lifted data, and validates any other lifted array (a shape) as the array it was', async () => {
      const dto = await asV2(lifted({ inputs: [input(many(300))] }));
      expect(dto.inputs[0].data).toBeInstanceOf(LiftedArray);
      for (const body of [{ inputs: [{ ...input(many(300)), shape: many(300) }] }, { inputs: [input(many(300))], parameters: many(300) }]) {
        const plain = await asV2(structuredClone(body)).catch((err: Error) => err.message);
        expect(typeof plain).toBe('string');
        await expect(asV2(lifted(body))).rejects.toThrow(plain as string);
      }
    });

    it('validates data holding objects as class-transformer copies it, for the encoder to refuse', async () => {
      const dto = await asV2({ inputs: [input([1, { prototype: 1 }])] });
      expect(dto.inputs[0].data).toEqual([1, {}]);
    });

    it('reads a valid body without class-transformer, and leaves one with prototype keys to Nest, which deletes them', async () => {
      const parameters = { binary_data_size: 16 };
      const dto = await asV2({ inputs: [{ name: 'x', shape: [2, 2], datatype: 'FP32', parameters }], outputs: [{ name: 'y' }] });
      // Not copied: the client's own object, where class-transformer would have built a new one.
      expect(dto.inputs[0].parameters).toBe(parameters);
      expect(dto.outputs[0]).toBeInstanceOf(V2RequestedOutputDto);
      const stripped = await asV2({ inputs: [{ ...input([1, 2, 3, 4]), parameters: { prototype: 1, constructor: 2, binary: 3 } }] });
      expect(stripped.inputs[0].parameters).toEqual({ binary: 3 });
    });
  });
});
