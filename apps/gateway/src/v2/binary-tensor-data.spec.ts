import { BalesError, ErrorCode } from '@bales/errors';
import { rejection } from '../../../../test/support/rejection';
import { binaryBody, binaryOutputs, binaryTensorInputs, isBinaryDatatype, splitBinaryBody, tensorBytes } from './binary-tensor-data';
import type { V2InferRequestDto, V2InputTensorDto } from './dto/v2-infer-request.dto';

/** A body as a client frames it: the JSON header, then the bytes. */
const framed = (header: string, ...tensors: Buffer[]) => Buffer.concat([Buffer.from(header), ...tensors]);

const binaryInput = (name: string, shape: number[], size: unknown, datatype = 'FP32') => ({ name, shape, datatype, parameters: { binary_data_size: size } }) as unknown as V2InputTensorDto;
const jsonInput = (name: string, data: unknown[]) => ({ name, shape: [1, data.length], datatype: 'FP32', data }) as V2InputTensorDto;

/** The status a body error answers with, and its message, as Fastify's own body errors carry them. */
function bodyError(fn: () => unknown): [number, string] {
  try {
    fn();
  } catch (err) {
    return [(err as { statusCode: number }).statusCode, (err as Error).message];
  }
  throw new Error('expected the call to fail');
}

async function invalidRequest(fn: () => unknown): Promise<string> {
  const err = await rejection(fn);
  expect(err).toBeInstanceOf(BalesError);
  expect(err.code).toBe(ErrorCode.INVALID_REQUEST);
  return err.message;
}

describe('splitBinaryBody', () => {
  it('parses the JSON header the length names and hands back every byte after it', () => {
    const header = '{"inputs":[]}';
    const tensors = Buffer.from([1, 2, 3, 4, 5]);
    const split = splitBinaryBody(framed(header, tensors), String(header.length));
    expect(split.header).toEqual({ inputs: [] });
    expect(split.tensors).toEqual(tensors);
  });

  it('takes a header that is the whole body, leaving no bytes', () => {
    expect(splitBinaryBody(Buffer.from('{}'), '2').tensors.length).toBe(0);
  });

  it.each([['abc'], ['-1'], ['1.5'], [''], ['12, 12'], [' 3']])('refuses a length of %j as not a non-negative integer, echoing it', (value) => {
    expect(bodyError(() => splitBinaryBody(Buffer.from('{}'), value))).toEqual([400, `Inference-Header-Content-Length must be a non-negative integer, the JSON header's length in bytes; got ${JSON.stringify(value)}`]);
  });

  it('refuses a header past the end of the body, naming both lengths', () => {
    expect(bodyError(() => splitBinaryBody(Buffer.from('{"inputs":[]}'), '14'))).toEqual([400, 'Inference-Header-Content-Length is 14, past the end of the 13-byte body']);
    expect(bodyError(() => splitBinaryBody(Buffer.alloc(0), '99999999999999999999'))).toEqual([400, 'Inference-Header-Content-Length is 99999999999999999999, past the end of the 0-byte body']);
  });

  it('refuses a length of 0, a body without a JSON header', () => {
    expect(bodyError(() => splitBinaryBody(Buffer.from([0, 0, 0, 0]), '0'))[1]).toMatch(/^Inference-Header-Content-Length is 0: a body of binary data without a JSON header is not supported/);
  });

  it('refuses a header that is not valid JSON, or poisons prototypes, as the JSON parser does', () => {
    expect(bodyError(() => splitBinaryBody(framed('{"inputs": [', Buffer.alloc(4)), '12'))).toEqual([400, expect.stringMatching(/^the JSON header is not valid JSON: /)]);
    const poisoned = '{"__proto__": {"x": 1}}';
    expect(bodyError(() => splitBinaryBody(Buffer.from(poisoned), String(poisoned.length)))).toEqual([400, 'the JSON header must not hold a __proto__ key, nor a constructor key holding prototype']);
  });

  it('never reads past the header for the JSON: bytes after it that are not JSON are the tensors', () => {
    expect(splitBinaryBody(framed('{}', Buffer.from('not json')), '2').header).toEqual({});
  });
});

describe('binaryTensorInputs', () => {
  it('leaves a JSON body’s inputs as they are', () => {
    const inputs = [jsonInput('x', [1, 2])];
    expect(binaryTensorInputs(inputs, undefined)).toBe(inputs);
  });

  it('cuts each binary input’s bytes in input order, keeping JSON inputs between them', () => {
    const a = Buffer.from(new Float32Array([1, 2]).buffer);
    const b = Buffer.from(new Float32Array([3, 4, 5]).buffer);
    const json = jsonInput('j', [7]);
    const inputs = binaryTensorInputs([binaryInput('a', [1, 2], 8), json, binaryInput('b', [1, 3], 12)], Buffer.concat([a, b]));
    expect(inputs).toEqual([{ name: 'a', shape: [1, 2], data: a }, json, { name: 'b', shape: [1, 3], data: b }]);
    expect(Buffer.isBuffer(inputs[0].data)).toBe(true);
  });

  it('takes a binary input of zero bytes', () => {
    expect(binaryTensorInputs([binaryInput('a', [0, 2], 0)], Buffer.alloc(0))).toEqual([{ name: 'a', shape: [0, 2], data: Buffer.alloc(0) }]);
  });

  it('refuses sizes that add up to fewer or more bytes than follow the header', async () => {
    expect(await invalidRequest(() => binaryTensorInputs([binaryInput('a', [1, 2], 8)], Buffer.alloc(12)))).toBe("the inputs' parameters.binary_data_size add up to 8 bytes, but 12 bytes follow the JSON header");
    expect(await invalidRequest(() => binaryTensorInputs([binaryInput('a', [1, 2], 8), binaryInput('b', [1, 2], 8)], Buffer.alloc(12)))).toBe(
      "the inputs' parameters.binary_data_size add up to 16 bytes, but 12 bytes follow the JSON header",
    );
  });

  it('refuses bytes after the header when no input is binary', async () => {
    expect(await invalidRequest(() => binaryTensorInputs([jsonInput('x', [1])], Buffer.alloc(4)))).toBe("the inputs' parameters.binary_data_size add up to 0 bytes, but 4 bytes follow the JSON header");
  });

  it('refuses an input with both data and binary_data_size', async () => {
    const both = { ...jsonInput('x', [1]), parameters: { binary_data_size: 4 } };
    expect(await invalidRequest(() => binaryTensorInputs([both], Buffer.alloc(4)))).toBe("input 'x' has both data and parameters.binary_data_size; send its values in one of them");
  });

  it.each([[-4], [1.5], ['4'], [null], [true], [{}]])('refuses a binary_data_size of %j', async (size) => {
    expect(await invalidRequest(() => binaryTensorInputs([binaryInput('x', [1, 1], size)], Buffer.alloc(4)))).toBe(
      `input 'x': parameters.binary_data_size must be a non-negative integer, got ${JSON.stringify(size)}`,
    );
  });

  it('refuses binary_data_size in a body that holds no binary data', async () => {
    expect(await invalidRequest(() => binaryTensorInputs([binaryInput('x', [1, 1], 4)], undefined))).toMatch(/^input 'x' has parameters.binary_data_size, but the body holds no binary data/);
  });
});

describe('binaryOutputs', () => {
  const req = (parameters?: object, outputs?: object[]) => ({ inputs: [], parameters, outputs }) as unknown as V2InferRequestDto;

  it('sends every output as JSON unless asked', () => {
    expect(binaryOutputs(req(), ['a', 'b'])).toEqual([false, false]);
  });

  it('sends every output as binary data with binary_data_output', () => {
    expect(binaryOutputs(req({ binary_data_output: true }), ['a', 'b'])).toEqual([true, true]);
  });

  it('lets an output’s own binary_data decide, over binary_data_output', () => {
    expect(binaryOutputs(req(undefined, [{ name: 'a', parameters: { binary_data: true } }, { name: 'b' }]), ['a', 'b'])).toEqual([true, false]);
    expect(binaryOutputs(req({ binary_data_output: true }, [{ name: 'a', parameters: { binary_data: false } }, { name: 'b' }]), ['a', 'b'])).toEqual([false, true]);
  });

  it('refuses a binary_data that is not a boolean', async () => {
    expect(await invalidRequest(() => binaryOutputs(req(undefined, [{ name: 'a', parameters: { binary_data: 'yes' } }]), ['a']))).toBe('output \'a\': parameters.binary_data must be a boolean, got "yes"');
  });
});

describe('tensorBytes and binaryBody', () => {
  it.each([
    ['FP32', [1.5, -2], Float32Array],
    ['FP64', [0.1, 1e300], Float64Array],
    ['INT32', [-7, 2147483647], Int32Array],
    ['INT8', [-128, 127], Int8Array],
    ['UINT8', [0, 255], Uint8Array],
  ] as const)('writes %s values as that type’s little-endian bytes, rows one after the other', (datatype, values, Typed) => {
    const bytes = tensorBytes(datatype, [[values[0]], [values[1]]]);
    expect(Array.from(new Typed(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)))).toEqual(values);
  });

  it('writes INT64 as 8 bytes a value and BOOL as one byte of 0 or 1', () => {
    const int64 = tensorBytes('INT64', [[-3, 2 ** 40]]);
    expect(int64.readBigInt64LE(0)).toBe(-3n);
    expect(int64.readBigInt64LE(8)).toBe(2n ** 40n);
    expect([...tensorBytes('BOOL', [[true, false], [1, 0]])]).toEqual([1, 0, 1, 0]);
  });

  it('knows which datatypes go as binary data', () => {
    expect(['BOOL', 'UINT8', 'INT8', 'INT32', 'INT64', 'FP32', 'FP64'].every(isBinaryDatatype)).toBe(true);
    expect(isBinaryDatatype('BYTES')).toBe(false);
    expect(isBinaryDatatype('FLOAT16')).toBe(false);
  });

  it('frames a response as its JSON, then the tensors, giving the JSON’s length', () => {
    const response = { model_name: 'm', outputs: [{ name: 'é', parameters: { binary_data_size: 3 } }] };
    const { body, headerLength } = binaryBody(response, [Buffer.from([1, 2]), Buffer.from([3])]);
    expect(headerLength).toBe(Buffer.byteLength(JSON.stringify(response)));
    expect(JSON.parse(body.subarray(0, headerLength).toString())).toEqual(response);
    expect([...body.subarray(headerLength)]).toEqual([1, 2, 3]);
  });
});
