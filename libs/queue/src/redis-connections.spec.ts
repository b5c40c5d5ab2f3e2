import { EventEmitter } from 'node:events';
import { keepErrorSinks } from './redis-connections';

describe('keepErrorSinks', () => {
  it('still catches an error a BullMQ connection emits after dropping all its listeners on close', () => {
    const connection = new EventEmitter();
    const blockingConnection = new EventEmitter();
    const seen: string[] = [];
    keepErrorSinks({ connection, blockingConnection }, (e) => seen.push(e.message));
    connection.removeAllListeners();
    blockingConnection.removeAllListeners('error');
    // Without the sink, emitting 'error' with no listener throws (ERR_UNHANDLED_ERROR).
    expect(() => connection.emit('error', new Error('Connection is closed.'))).not.toThrow();
    expect(() => blockingConnection.emit('error', new Error('Connection is closed.'))).not.toThrow();
    expect(seen).toEqual(['Connection is closed.', 'Connection is closed.']);
  });
});
