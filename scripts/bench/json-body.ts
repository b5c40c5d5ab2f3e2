/**
 * npm run bench:json [-- --iterations 200 --repeats 5]
 *
 * What an image row's JSON body costs the event loop before it is queued, in one process with no HTTP: the
 * gateway's body parser (which lifts large numeric arrays into float32), the validation pipe and the input encoder,
 * against JSON.parse of the same body alone, and against the path without lifting (JSON.parse, then the pipe and the
 * encoder walking its arrays). For the `/infer` body (nested `[3,48,192]`) and the V2 body (flat), each with values
 * of 5 decimals and with float32 values in 17 digits, as numpy's tolist() prints them. Writes bench-results/json-body.json.
 */
import 'reflect-metadata';
import { ArgumentMetadata } from '@nestjs/common';
import { encodePayload, encodeTensors } from '../../libs/model-registry/src/input-encoder';
import type { TensorSpec } from '@bales/model-registry';
import { BodyValidationPipe } from '../../apps/gateway/src/common/body-validation.pipe';
import { parseJson } from '../../apps/gateway/src/common/json-body.parser';
import { InferRequestDto } from '../../apps/gateway/src/infer/dto/infer-request.dto';
import { V2InferRequestDto } from '../../apps/gateway/src/v2/dto/v2-infer-request.dto';
import { seededRandom } from '../onnx/onnx-writer';
import { argValue, machine, median, round, writeResult } from './common';

const SHAPE = [3, 48, 192];
const SPEC: TensorSpec[] = [{ name: 'input', type: 'float32', shape: ['batch', ...SHAPE] }];
const pipe = new BodyValidationPipe();

const nest = (values: number[]) => [0, 1, 2].map((c) => Array.from({ length: 48 }, (_, h) => values.slice((c * 48 + h) * 192, (c * 48 + h + 1) * 192)));

interface Body {
  name: string;
  text: Buffer;
  /** Validates and encodes a parsed body as the gateway's route does. */
  handle: (value: unknown) => Promise<unknown>;
}

function bodies(): Body[] {
  const rand = seededRandom(2024);
  const styles = {
    '5 decimals': Array.from({ length: 27_648 }, () => Math.round(rand() * 1e5) / 1e5),
    'float32, 17 digits': Array.from(Float32Array.from({ length: 27_648 }, () => rand() * 2 - 1)),
  };
  const infer: ArgumentMetadata = { type: 'body', metatype: InferRequestDto };
  const v2: ArgumentMetadata = { type: 'body', metatype: V2InferRequestDto };
  return Object.entries(styles).flatMap(([style, values]) => [
    {
      name: `/infer, ${style}`,
      text: Buffer.from(JSON.stringify({ model_id: 'image_v1', payload: { input: nest(values) } })),
      handle: async (value: unknown) => encodePayload(SPEC, [0], ((await pipe.transform(value, infer)) as InferRequestDto).payload),
    },
    {
      name: `V2, ${style}`,
      text: Buffer.from(JSON.stringify({ inputs: [{ name: 'input', shape: [1, ...SHAPE], datatype: 'FP32', data: values }] })),
      handle: async (value: unknown) => encodeTensors('image_v1', SPEC, [0], ((await pipe.transform(value, v2)) as V2InferRequestDto).inputs as never),
    },
  ]);
}

/** Milliseconds per call of `run`, the median of `repeats` runs of `iterations` calls after one run of warm-up. */
async function msPer(iterations: number, repeats: number, run: () => unknown): Promise<number> {
  const runs: number[] = [];
  for (let r = 0; r <= repeats; r++) {
    const started = performance.now();
    for (let i = 0; i < iterations; i++) await run();
    if (r > 0) runs.push((performance.now() - started) / iterations);
  }
  return median(runs);
}

async function main(): Promise<void> {
  const iterations = Number(argValue('iterations') ?? 200);
  const repeats = Number(argValue('repeats') ?? 5);
  const results = [];
  for (const body of bodies()) {
    const parse = await msPer(iterations, repeats, () => JSON.parse(body.text.toString('utf8')));
    const lift = await msPer(iterations, repeats, () => parseJson(body.text));
    const gateway = await msPer(iterations, repeats, () => body.handle(parseJson(body.text)));
    const unlifted = await msPer(iterations, repeats, () => body.handle(JSON.parse(body.text.toString('utf8'))));
    results.push({ body: body.name, kb: round(body.text.length / 1024, 0), parseMs: round(parse, 3), parserMs: round(lift, 3), gatewayMs: round(gateway, 3), withoutLiftingMs: round(unlifted, 3) });
  }
  const m = machine();
  console.log(`=== Image-row JSON bodies before the queue, ${iterations} x ${repeats} runs, median ===`);
  console.log('body                        KB  JSON.parse  parser  parser+pipe+encode  JSON.parse+pipe+encode');
  for (const r of results) {
    console.log(`${r.body.padEnd(26)} ${String(r.kb).padStart(4)} ${r.parseMs.toFixed(3).padStart(11)} ${r.parserMs.toFixed(3).padStart(7)} ${r.gatewayMs.toFixed(3).padStart(19)} ${r.withoutLiftingMs.toFixed(3).padStart(23)}`);
  }
  console.log(`${new Date().toISOString().slice(0, 10)}, ${m.cores} cores ${m.cpu}, Node ${m.node}`);
  const file = writeResult('json-body.json', { benchmark: 'json-body', date: new Date().toISOString(), iterations, repeats, machine: m, results });
  console.log(`wrote ${file}`);
}

void main();
