/**
 * The HTTP ceiling for the end-to-end benchmark: the same Fastify the gateway runs on, parsing the same JSON
 * body and answering a JSON body of the gateway's size, with no validation, queue or model behind it.
 * Started by scripts/bench/gateway.ts with PORT, HOST and BARE_ANSWER (a sample gateway answer).
 */
import Fastify from 'fastify';
import { randomUUID } from 'node:crypto';

const sample = JSON.parse(process.env.BARE_ANSWER ?? '{}') as Record<string, unknown>;
const app = Fastify({ logger: false });
app.get('/health', async () => ({ status: 'ok' }));
app.post('/infer', async (req) => {
  const input = (req.body as { payload?: { input?: unknown[] } }).payload?.input;
  return { ...sample, request_id: randomUUID(), batch_size: Array.isArray(input) ? 1 : 0 };
});
app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' }).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
