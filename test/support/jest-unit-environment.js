// The unit project's environment: the shared one, with connections and worker threads refused while a spec runs, so
// that no unit spec can pass only because a Redis or a server happens to answer on this host, or start ONNX Runtime's
// worker pool.
const net = require('node:net');
const workerThreads = require('node:worker_threads');
const OrtEnvironment = require('./jest-environment');

class UnitEnvironment extends OrtEnvironment {
  constructor(config, context) {
    super(config, context);
    this.testPath = context.testPath;
  }

  async setup() {
    await super.setup();
    const testPath = this.testPath;
    this.connect = net.Socket.prototype.connect;
    net.Socket.prototype.connect = function refuse(...args) {
      // net.connect() hands over its arguments normalized, as [options, callback].
      const [first] = Array.isArray(args[0]) ? args[0] : args;
      const where = typeof first === 'object' ? (first.path ?? `${first.host ?? 'localhost'}:${first.port}`) : String(first);
      throw new Error(`${testPath} opened a connection (${where}): a spec that needs Redis or a server belongs to the e2e project (jest.config.js)`);
    };
    this.Worker = workerThreads.Worker;
    workerThreads.Worker = function refuse() {
      throw new Error(`${testPath} started a worker thread: a spec that needs one belongs to the e2e project (jest.config.js)`);
    };
  }

  async teardown() {
    net.Socket.prototype.connect = this.connect;
    workerThreads.Worker = this.Worker;
    await super.teardown();
  }
}

module.exports = UnitEnvironment;
