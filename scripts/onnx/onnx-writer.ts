/**
 * A minimal, dependency-free ONNX (protobuf) writer: just enough of onnx.proto to build small
 * feed-forward graphs deterministically, for the shipped stub models and for test fixtures.
 * Field numbers follow onnx/onnx.proto (IR version 8).
 */

export enum ElemType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  DOUBLE = 11,
}

/** A dimension: a fixed size, or a symbolic name for a dynamic one. */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: ElemType;
  shape: Dim[];
}

export interface Initializer {
  name: string;
  dims: number[];
  /** float32 values, or int64 values when elemType is INT64. */
  values: Float32Array | BigInt64Array;
}

export type AttributeValue = number | number[] | string | { int: number } | { ints: number[] };

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Record<string, AttributeValue>;
}

export interface GraphSpec {
  name: string;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Initializer[];
  nodes: NodeSpec[];
  opset?: number;
  docString?: string;
}

class ProtoWriter {
  private readonly chunks: Buffer[] = [];

  varintField(field: number, value: number | bigint): this {
    return this.key(field, 0).varint(value);
  }

  stringField(field: number, value: string): this {
    return this.bytesField(field, Buffer.from(value, 'utf8'));
  }

  bytesField(field: number, value: Buffer): this {
    this.key(field, 2).varint(value.length);
    this.chunks.push(value);
    return this;
  }

  messageField(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytesField(field, inner.finish());
  }

  floatField(field: number, value: number): this {
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.key(field, 5);
    this.chunks.push(b);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }

  private key(field: number, wireType: number): this {
    return this.varint((field << 3) | wireType);
  }

  private varint(value: number | bigint): this {
    // Negative int64 values are encoded as their 64-bit two's complement, as protobuf does.
    let v = BigInt.asUintN(64, BigInt(value));
    const bytes: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) byte |= 0x80;
      bytes.push(byte);
    } while (v > 0n);
    this.chunks.push(Buffer.from(bytes));
    return this;
  }
}

function writeValueInfo(w: ProtoWriter, info: ValueInfo): void {
  w.stringField(1, info.name);
  w.messageField(2, (type) =>
    type.messageField(1, (tensor) => {
      tensor.varintField(1, info.elemType);
      tensor.messageField(2, (shape) => {
        for (const dim of info.shape) {
          shape.messageField(1, (d) => (typeof dim === 'number' ? d.varintField(1, dim) : d.stringField(2, dim)));
        }
      });
    }),
  );
}

function writeInitializer(w: ProtoWriter, init: Initializer): void {
  for (const d of init.dims) w.varintField(1, d);
  w.varintField(2, init.values instanceof BigInt64Array ? ElemType.INT64 : ElemType.FLOAT);
  w.stringField(8, init.name);
  // raw_data is little-endian, which is what typed arrays hold on every platform Node runs on here.
  w.bytesField(9, Buffer.from(init.values.buffer, init.values.byteOffset, init.values.byteLength));
}

function writeAttribute(w: ProtoWriter, name: string, value: AttributeValue): void {
  w.stringField(1, name);
  if (typeof value === 'string') {
    w.bytesField(4, Buffer.from(value, 'utf8')).varintField(20, 3);
  } else if (typeof value === 'number') {
    w.floatField(2, value).varintField(20, 1);
  } else if (Array.isArray(value)) {
    for (const f of value) w.floatField(7, f);
    w.varintField(20, 6);
  } else if ('int' in value) {
    w.varintField(3, value.int).varintField(20, 2);
  } else {
    for (const i of value.ints) w.varintField(8, i);
    w.varintField(20, 7);
  }
}

/** Serialises a graph as an ONNX ModelProto. The same spec always gives the same bytes. */
export function encodeModel(graph: GraphSpec): Buffer {
  const model = new ProtoWriter();
  model.varintField(1, 8); // ir_version
  model.stringField(2, 'bales');
  model.stringField(3, '1');
  model.messageField(7, (g) => {
    graph.nodes.forEach((node, i) =>
      g.messageField(1, (n) => {
        node.inputs.forEach((input) => n.stringField(1, input));
        node.outputs.forEach((output) => n.stringField(2, output));
        n.stringField(3, `${node.op.toLowerCase()}_${i}`);
        n.stringField(4, node.op);
        for (const [name, value] of Object.entries(node.attributes ?? {})) {
          n.messageField(5, (a) => writeAttribute(a, name, value));
        }
      }),
    );
    g.stringField(2, graph.name);
    graph.initializers.forEach((init) => g.messageField(5, (t) => writeInitializer(t, init)));
    if (graph.docString) g.stringField(10, graph.docString);
    graph.inputs.forEach((input) => g.messageField(11, (v) => writeValueInfo(v, input)));
    graph.outputs.forEach((output) => g.messageField(12, (v) => writeValueInfo(v, output)));
  });
  model.messageField(8, (opset) => opset.stringField(1, '').varintField(2, graph.opset ?? 17));
  return model.finish();
}

/** mulberry32: a tiny seeded PRNG, so generated weights are identical on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Glorot-uniform weights for a dense layer, from a seeded generator. */
export function denseWeights(rand: () => number, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const w = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < w.length; i++) w[i] = (rand() * 2 - 1) * limit;
  return w;
}

/**
 * A multilayer perceptron: Gemm + Relu between hidden layers, then Softmax over the last layer.
 * Input `input` [batch, sizes[0]], output `probabilities` [batch, sizes.at(-1)].
 */
export function mlpClassifier(name: string, sizes: number[], seed: number): GraphSpec {
  const rand = seededRandom(seed);
  const initializers: Initializer[] = [];
  const nodes: NodeSpec[] = [];
  let current = 'input';
  for (let layer = 0; layer < sizes.length - 1; layer++) {
    const [fanIn, fanOut] = [sizes[layer], sizes[layer + 1]];
    const w = `w${layer}`;
    const b = `b${layer}`;
    initializers.push({ name: w, dims: [fanIn, fanOut], values: denseWeights(rand, fanIn, fanOut) });
    initializers.push({ name: b, dims: [fanOut], values: new Float32Array(fanOut).map(() => (rand() - 0.5) * 0.1) });
    const isLast = layer === sizes.length - 2;
    const out = isLast ? 'logits' : `h${layer}`;
    nodes.push({ op: 'Gemm', inputs: [current, w, b], outputs: [out] });
    if (!isLast) {
      nodes.push({ op: 'Relu', inputs: [out], outputs: [`${out}_relu`] });
      current = `${out}_relu`;
    }
  }
  nodes.push({ op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: { int: -1 } } });
  return {
    name,
    inputs: [{ name: 'input', elemType: ElemType.FLOAT, shape: ['batch', sizes[0]] }],
    outputs: [{ name: 'probabilities', elemType: ElemType.FLOAT, shape: ['batch', sizes[sizes.length - 1]] }],
    initializers,
    nodes,
  };
}

/** He-uniform weights for a convolution [outChannels, inChannels, ...kernel], suited to the Relu after it. */
export function convWeights(rand: () => number, outChannels: number, inChannels: number, kernel: number[]): Float32Array {
  const fanIn = inChannels * kernel.reduce((a, b) => a * b, 1);
  const limit = Math.sqrt(6 / fanIn);
  const w = new Float32Array(outChannels * fanIn);
  for (let i = 0; i < w.length; i++) w[i] = (rand() * 2 - 1) * limit;
  return w;
}

/** One convolution of a ConvNet: square in every spatial dimension, padded by `pad` on each side. */
export interface ConvLayer {
  channels: number;
  kernel: number;
  stride: number;
  pad: number;
}

export interface ConvNetSpec {
  /** The shape of one row as the model takes it, e.g. [3, 48, 192] for an image or [16000] for audio samples. */
  input: number[];
  /** [channels, ...spatial] the row is reshaped to before the first convolution, when `input` has no channel dimension. */
  reshape?: number[];
  convs: ConvLayer[];
  classes: number;
}

/**
 * A small convolutional classifier: (Reshape), then Conv + Relu per layer, GlobalAveragePool, Flatten, Gemm and
 * Softmax. Works in 1, 2 or 3 spatial dimensions. Input `input` [batch, ...spec.input], output
 * `probabilities` [batch, spec.classes].
 */
export function convClassifier(name: string, spec: ConvNetSpec, seed: number): GraphSpec {
  const rand = seededRandom(seed);
  const initializers: Initializer[] = [];
  const nodes: NodeSpec[] = [];
  const shape = spec.reshape ?? spec.input;
  let current = 'input';
  if (spec.reshape) {
    // 0 keeps the batch dimension as it comes.
    initializers.push({ name: 'reshape_to', dims: [shape.length + 1], values: BigInt64Array.from([0, ...shape].map(BigInt)) });
    nodes.push({ op: 'Reshape', inputs: ['input', 'reshape_to'], outputs: ['reshaped'] });
    current = 'reshaped';
  }
  const spatial = shape.length - 1;
  let channels = shape[0];
  spec.convs.forEach((conv, layer) => {
    const kernel = Array<number>(spatial).fill(conv.kernel);
    initializers.push({ name: `conv${layer}_w`, dims: [conv.channels, channels, ...kernel], values: convWeights(rand, conv.channels, channels, kernel) });
    initializers.push({ name: `conv${layer}_b`, dims: [conv.channels], values: new Float32Array(conv.channels).map(() => (rand() - 0.5) * 0.1) });
    nodes.push({
      op: 'Conv',
      inputs: [current, `conv${layer}_w`, `conv${layer}_b`],
      outputs: [`conv${layer}`],
      attributes: { kernel_shape: { ints: kernel }, strides: { ints: Array<number>(spatial).fill(conv.stride) }, pads: { ints: Array<number>(2 * spatial).fill(conv.pad) } },
    });
    nodes.push({ op: 'Relu', inputs: [`conv${layer}`], outputs: [`conv${layer}_relu`] });
    current = `conv${layer}_relu`;
    channels = conv.channels;
  });
  nodes.push({ op: 'GlobalAveragePool', inputs: [current], outputs: ['pooled'] });
  nodes.push({ op: 'Flatten', inputs: ['pooled'], outputs: ['features'], attributes: { axis: { int: 1 } } });
  initializers.push({ name: 'fc_w', dims: [channels, spec.classes], values: denseWeights(rand, channels, spec.classes) });
  initializers.push({ name: 'fc_b', dims: [spec.classes], values: new Float32Array(spec.classes).map(() => (rand() - 0.5) * 0.1) });
  nodes.push({ op: 'Gemm', inputs: ['features', 'fc_w', 'fc_b'], outputs: ['logits'] });
  nodes.push({ op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attributes: { axis: { int: -1 } } });
  return {
    name,
    inputs: [{ name: 'input', elemType: ElemType.FLOAT, shape: ['batch', ...spec.input] }],
    outputs: [{ name: 'probabilities', elemType: ElemType.FLOAT, shape: ['batch', spec.classes] }],
    initializers,
    nodes,
  };
}
