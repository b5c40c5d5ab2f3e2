import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** What an inference endpoint needs of its HTTP exchange besides the body, taken in one parameter. */
export interface InferenceCall {
  /** The id Fastify gave the request (a UUID, see fastifyLogging): the response's request_id and every log line's. */
  requestId: string;
  /** When Fastify received the request, on the performance.now() clock: latency_ms counts from here. */
  receivedAt: number;
  /** Aborts when the connection closes before the answer was sent: the client has gone and its work can be dropped. */
  clientGone: AbortSignal;
}

export const InferenceCall = createParamDecorator((_: unknown, ctx: ExecutionContext): InferenceCall => {
  const http = ctx.switchToHttp();
  const reply = http.getResponse<FastifyReply>();
  const res = reply.raw;
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return { requestId: http.getRequest<FastifyRequest>().id, receivedAt: performance.now() - reply.elapsedTime, clientGone: controller.signal };
});
