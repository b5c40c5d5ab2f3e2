import { Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { BalesConfig } from '@bales/config';
import { ModelRegistry } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { requestedModel } from './request-options';

// Only models the registry knows become label values: a client naming made-up models cannot grow the series.
const UNKNOWN_MODEL = 'unknown';
/** The inference routes: the original POST /infer, and the Open Inference Protocol's, which name the model in the path. */
const INFER = '/infer';
const V2_INFER = new Set(['/v2/models/:name/infer', '/v2/models/:name/versions/:version/infer']);

/**
 * Counts every answered inference request (POST /infer and the V2 infer routes) with its final status, whichever
 * layer answered it (validation, the error filter, a timeout or success), from Fastify's onResponse hook: after
 * the reply went out, off the request's path.
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
      const route = request.routeOptions.url;
      if (route === INFER) this.metrics.request(this.modelLabel(bodyModel(request.body)), reply.statusCode, reply.elapsedTime);
      else if (route !== undefined && V2_INFER.has(route)) this.metrics.request(this.modelLabel((request.params as { name?: string }).name), reply.statusCode, reply.elapsedTime);
      done();
    });
  }

  private modelLabel(named: unknown): string {
    // Read before validation: the body may name anything, or nothing.
    if (named !== undefined && typeof named !== 'string') return UNKNOWN_MODEL;
    const id = requestedModel(this.config, named);
    return this.registry.has(id) ? id : UNKNOWN_MODEL;
  }
}

const bodyModel = (body: unknown): unknown => (body !== null && typeof body === 'object' ? (body as { model_id?: unknown }).model_id : undefined);
