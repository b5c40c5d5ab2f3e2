import { LARGE_BODY_BYTES } from '../apps/gateway/src/common/large-body-heap';
import { GatewayProcess, ownGateway, post, spawnGateway } from './support/gateway';
import { EXAMPLE_INPUT } from './support/example-input';
import { TestRedis } from './support/redis-server';

/** A 3x224x224 float32 image at full precision, nested as a client would send it. */
function imageAsJson(): { payload: { input: number[][][] } } {
  let seed = 7;
  const next = () => Math.fround(((seed = (seed * 16807) % 2147483647) / 2147483647) * 4 - 2);
  const input = Array.from({ length: 3 }, () => Array.from({ length: 224 }, () => Array.from({ length: 224 }, next)));
  return { payload: { input } };
}

describe('request body limits at the defaults', () => {
  const own = ownGateway();

  it('admits a 3x224x224 float32 image sent as JSON: it reaches the model check, not the body limit', async () => {
    const body = JSON.stringify(imageAsJson());
    expect(body.length).toBeGreaterThan(2_500_000);
    const res = await post(`${own.gw.url}/infer`, body);
    // The stub takes 128 values, so the image is refused for its shape: the body itself was read whole.
    expect(res.status).toBe(422);
    expect(res.body.message).toContain('payload.input');
  });

  it('answers a larger body with 413 naming MAX_BODY_BYTES and the size that came', async () => {
    const body = JSON.stringify({ payload: { input: Array(900_000).fill(0.123456789) } });
    const res = await post(`${own.gw.url}/infer`, body);
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({
      statusCode: 413,
      message: `the request body is too large: ${body.length.toLocaleString('en-US')} bytes, over MAX_BODY_BYTES=8388608`,
      request_id: expect.any(String),
    });
  });
});

describe('heap room for large bodies (a gateway process)', () => {
  let redis: TestRedis;
  let gw: GatewayProcess;
  beforeAll(async () => {
    redis = await TestRedis.start();
    gw = await spawnGateway(redis.url);
  });
  afterAll(async () => {
    await gw?.stop();
    await redis?.stop();
  });

  const memoryLines = () => gw.output().split('\n').filter((line) => line.includes('"context":"Memory"'));

  it("keeps V8's own growing factor for small bodies, and from the first large one on grows the heap, saying so once", async () => {
    for (let i = 0; i < 5; i++) expect((await post(`${gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } })).status).toBe(200);
    expect(memoryLines()).toEqual([]);
    // Refused for its shape, but its size is what counts.
    const large = JSON.stringify({ payload: { input: Array(LARGE_BODY_BYTES / 8).fill(0.1234567) } });
    expect(large.length).toBeGreaterThan(LARGE_BODY_BYTES);
    for (let i = 0; i < 3; i++) expect((await post(`${gw.url}/infer`, large)).status).toBe(422);
    expect((await post(`${gw.url}/infer`, { payload: { input: EXAMPLE_INPUT } })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(memoryLines()).toEqual([expect.stringContaining(`a body of ${large.length} bytes: V8's old generation may now grow to 4x its live size between full GCs (--heap-growing-percent=300)`)]);
  });
});
