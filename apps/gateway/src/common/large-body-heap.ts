import { Logger } from '@nestjs/common';
import type { FastifyInstance } from 'fastify';
import { setFlagsFromString } from 'node:v8';

/** Bodies from this size on make their buffers the main thing that sets off V8's full GCs. */
export const LARGE_BODY_BYTES = 32 * 1024;

/** Between full GCs, V8's old generation may grow to four times what survived the last one. */
export const LARGE_BODY_HEAP_FLAG = '--heap-growing-percent=300';

/**
 * From the first request whose body is LARGE_BODY_BYTES or more, gives V8's old generation more room above its live
 * size: V8 starts a full GC once the buffers allocated since the last one fill that room, and image-sized bodies
 * filled it several times a second. A gateway that only ever sees small bodies keeps V8's own growing factor, under
 * which it runs faster (docs/operations.md, Memory). The flag is read at each full GC, so it holds from the next.
 */
export function growHeapForLargeBodies(fastify: FastifyInstance, setFlags: (flag: string) => void = setFlagsFromString): void {
  let grown = false;
  fastify.addHook('onRequest', (request, _reply, done) => {
    if (!grown && Number(request.headers['content-length']) >= LARGE_BODY_BYTES) {
      grown = true;
      setFlags(LARGE_BODY_HEAP_FLAG);
      new Logger('Memory').log(`a body of ${request.headers['content-length']} bytes: V8's old generation may now grow to 4x its live size between full GCs (${LARGE_BODY_HEAP_FLAG})`);
    }
    done();
  });
}
