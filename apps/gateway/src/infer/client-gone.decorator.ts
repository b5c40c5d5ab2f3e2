import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

/** Aborts when the connection closes before the answer was sent: the client has gone and its work can be dropped. */
export const ClientGone = createParamDecorator((_: unknown, ctx: ExecutionContext): AbortSignal => {
  const res = ctx.switchToHttp().getResponse<FastifyReply>().raw;
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
});
