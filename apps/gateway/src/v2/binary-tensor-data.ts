import { BalesError, ErrorCode } from '@bales/errors';
import type { TensorInput } from '@bales/model-registry';
import { BodyError, parseJson } from '../common/json-body.parser';
import { V2_DATATYPES, type V2Datatype, type V2InferRequestDto, type V2InputTensorDto } from './dto/v2-infer-request.dto';

/**
 * The Open Inference Protocol's binary tensor data extension (KServe, Triton): a body of `n` bytes of JSON, where
 * `n` is this header's value, followed by the raw tensor bytes. Node spells header names in lower case.
 */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

/** Each datatype's typed array: binary tensor data is its little-endian bytes, row-major, a BOOL one byte of 0 or 1. */
const TYPED_ARRAYS: Record<V2Datatype, Uint8ArrayConstructor | Int8ArrayConstructor | Int32ArrayConstructor | BigInt64ArrayConstructor | Float32ArrayConstructor | Float64ArrayConstructor> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  INT8: Int8Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP32: Float32Array,
  FP64: Float64Array,
};

const invalid = (message: string): never => {
  throw new BalesError(ErrorCode.INVALID_REQUEST, message);
};

// A client's value echoed in a message is cut short: it may be anything, of any length.
const quote = (value: unknown): string => (JSON.stringify(value) ?? String(value)).slice(0, 40);

/** A body with binary tensor data, split where its JSON header ends. */
export interface BinaryBody {
  /** The JSON header, parsed: the inference request, validated as any V2 JSON body is. */
  header: unknown;
  /** Every byte after the header: the binary inputs' data, in input order. */
  tensors: Buffer;
}

/**
 * Splits a body at the length Inference-Header-Content-Length gives and parses the JSON before it. Throws a 400
 * naming what is wrong: a length that is not a non-negative integer, one past the end of the body, or bad JSON.
 */
export function splitBinaryBody(body: Buffer, headerLength: string | string[] | undefined): BinaryBody {
  const value = String(headerLength);
  if (!/^\d+$/.test(value)) throw new BodyError(`Inference-Header-Content-Length must be a non-negative integer, the JSON header's length in bytes; got ${quote(value)}`);
  const length = Number(value);
  if (length > body.length) throw new BodyError(`Inference-Header-Content-Length is ${value}, past the end of the ${body.length}-byte body`);
  if (length === 0) throw new BodyError('Inference-Header-Content-Length is 0: a body of binary data without a JSON header is not supported; send the inference request as JSON first');
  return { header: parseJson(body.subarray(0, length), 'the JSON header'), tensors: body.subarray(length) };
}

/**
 * The request's inputs with each binary input's data cut from the tensor bytes, as a Buffer the encoder checks
 * against the shape and datatype. `tensors` is undefined for a JSON body. Throws INVALID_REQUEST when an input has
 * both data and binary_data_size, a binary_data_size that is not a non-negative integer, binary data in a JSON
 * body, or when the sizes do not add up to the bytes after the header.
 */
export function binaryTensorInputs(inputs: V2InputTensorDto[], tensors: Buffer | undefined): TensorInput[] {
  let total = 0;
  for (const input of inputs) {
    const size = input.parameters?.binary_data_size;
    if (size === undefined) continue;
    const where = `input '${input.name}'`;
    if (input.data !== undefined) invalid(`${where} has both data and parameters.binary_data_size; send its values in one of them`);
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) invalid(`${where}: parameters.binary_data_size must be a non-negative integer, got ${quote(size)}`);
    if (tensors === undefined) invalid(`${where} has parameters.binary_data_size, but the body holds no binary data: send it after the JSON header, with the Inference-Header-Content-Length header`);
    total += size as number;
  }
  if (tensors === undefined) return inputs;
  if (total !== tensors.length) invalid(`the inputs' parameters.binary_data_size add up to ${total} bytes, but ${tensors.length} bytes follow the JSON header`);
  let offset = 0;
  return inputs.map((input) => {
    const size = input.parameters?.binary_data_size as number | undefined;
    if (size === undefined) return input;
    offset += size;
    return { name: input.name, shape: input.shape, data: tensors.subarray(offset - size, offset) };
  });
}

/**
 * Which of the outputs answer as binary data, in their order: an output's own parameters.binary_data, else the
 * request's parameters.binary_data_output. Throws INVALID_REQUEST for a binary_data that is not a boolean.
 */
export function binaryOutputs(req: V2InferRequestDto, names: string[]): boolean[] {
  const all = req.parameters?.binary_data_output === true;
  if (!req.outputs) return names.map(() => all);
  return req.outputs.map((output) => {
    const own = output.parameters?.binary_data;
    if (own !== undefined && typeof own !== 'boolean') invalid(`output '${output.name}': parameters.binary_data must be a boolean, got ${quote(own)}`);
    return (own as boolean | undefined) ?? all;
  });
}

/** Whether outputs of the datatype can be sent as binary data. */
export const isBinaryDatatype = (datatype: string): datatype is V2Datatype => (V2_DATATYPES as readonly string[]).includes(datatype);

/** An output tensor as binary data: the rows' values, one after the other, as the datatype's bytes. */
export function tensorBytes(datatype: V2Datatype, rows: ArrayLike<number | boolean>[]): Buffer {
  const out = new TYPED_ARRAYS[datatype](rows.reduce((n, row) => n + row.length, 0));
  let i = 0;
  for (const row of rows) {
    for (let j = 0; j < row.length; j++) out[i++] = (datatype === 'INT64' ? BigInt(Number(row[j])) : Number(row[j])) as never;
  }
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** A response body with binary tensor data: the JSON response, then each binary output's bytes, in output order. */
export function binaryBody(response: object, tensors: Buffer[]): { body: Buffer; headerLength: number } {
  const header = Buffer.from(JSON.stringify(response));
  return { body: Buffer.concat([header, ...tensors]), headerLength: header.length };
}
