import { Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { BalesConfig } from '@bales/config';
import { ModelRegistry } from '@bales/model-registry';
import { BalesMetrics } from './metrics';

// Only models the registry knows become label values: a client naming made-up models cannot grow the series.
const UNKNOWN_MODEL = 'unknown';

/**
 * Counts every answered POST /infer with its final status, whichever layer answered it (validation, the error
 * filter, a timeout or success), from Fastify's onResponse hook: after the reply went out, off the request's path.
 */
@Injectable()
export class InferRequestMetrics implements OnModuleInit {
  constructor(
    private readonly adapter: HttpAdapterHost,
    private readonly metrics: BalesMetrics,
    private readonly registry: ModelRegistry,
    private readonly config: BalesConfig,
  ) {}

  onModuleInit(): void {
    const fastify = this.adapter.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onResponse', (request, reply, done) => {
      if (request.routeOptions.url === '/infer') this.metrics.request(this.modelLabel(request.body), reply.statusCode, reply.elapsedTime);
      done();
    });
  }

  private modelLabel(body: unknown): string {
    const named = body !== null && typeof body === 'object' ? (body as { model_id?: unknown }).model_id : undefined;
    const id = named ?? this.config.DEFAULT_MODEL_ID;
    return typeof id === 'string' && this.registry.has(id) ? id : UNKNOWN_MODEL;
  }
}
