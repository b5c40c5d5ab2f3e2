import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** What an inference endpoint needs of its HTTP exchange besides the body, taken in one parameter. */
export interface InferenceCall {
  /** The id Fastify gave the request (a UUID, see fastifyLogging): the response's request_id and every log line's. */
  requestId: string;
  /** When Fastify received the request, on the performance.now() clock: latency_ms counts from here. */
  receivedAt: number;
  /**
   * Calls the listener when the connection closes before the answer was sent (at once when it already has):
   * the client has gone and its work can be dropped.
   */
  onClientGone: (listener: () => void) => void;
  /** Sets the answer's Server-Timing header. */
  setServerTiming: (value: string) => void;
}

export const InferenceCall = createParamDecorator((_: unknown, ctx: ExecutionContext): InferenceCall => {
  const http = ctx.switchToHttp();
  const reply = http.getResponse<FastifyReply>();
  const res = reply.raw;
  // One 'close' listener per request, however many rows (V2 batches) register for it.
  const listeners: (() => void)[] = [];
  const onClientGone = (listener: () => void) => {
    if (res.closed) {
      if (!res.writableFinished) listener();
      return;
    }
    if (listeners.length === 0) {
      res.once('close', () => {
        if (!res.writableFinished) for (const l of listeners) l();
      });
    }
    listeners.push(listener);
  };
  const setServerTiming = (value: string) => void reply.header('server-timing', value);
  return { requestId: http.getRequest<FastifyRequest>().id, receivedAt: performance.now() - reply.elapsedTime, onClientGone, setServerTiming };
});
