import { ownGateway, post } from './support/gateway';

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
