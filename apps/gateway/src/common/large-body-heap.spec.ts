import Fastify from 'fastify';
import { LARGE_BODY_BYTES, LARGE_BODY_HEAP_FLAG, growHeapForLargeBodies } from './large-body-heap';

describe('growHeapForLargeBodies', () => {
  async function server() {
    const set: string[] = [];
    const fastify = Fastify();
    fastify.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    fastify.post('/', async () => ({ ok: true }));
    growHeapForLargeBodies(fastify, (flag) => set.push(flag));
    await fastify.ready();
    const send = (bytes: number) => fastify.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.alloc(bytes) });
    return { fastify, set, send };
  }

  it('leaves V8 its own growing factor while every body is small', async () => {
    const { fastify, set, send } = await server();
    for (const bytes of [0, 1024, LARGE_BODY_BYTES - 1]) expect((await send(bytes)).statusCode).toBe(200);
    expect(set).toEqual([]);
    await fastify.close();
  });

  it('sets the flag once, at the first body of LARGE_BODY_BYTES or more, and answers that request as any other', async () => {
    const { fastify, set, send } = await server();
    await send(100);
    expect((await send(LARGE_BODY_BYTES)).statusCode).toBe(200);
    await send(4 * LARGE_BODY_BYTES);
    await send(100);
    expect(set).toEqual([LARGE_BODY_HEAP_FLAG]);
    await fastify.close();
  });
});
