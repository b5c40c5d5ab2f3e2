import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

/** When Fastify received the request, on the performance.now() clock: latency_ms counts from here. */
export const ReceivedAt = createParamDecorator(
  (_: unknown, ctx: ExecutionContext): number => performance.now() - ctx.switchToHttp().getResponse<FastifyReply>().elapsedTime,
);
