// onnxruntime-node checks `data instanceof Float32Array` against the host's typed arrays, while jest
// gives each test file its own realm with its own constructors. Sharing the host's keeps them equal.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = ['ArrayBuffer', 'Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array'];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = OrtEnvironment;
