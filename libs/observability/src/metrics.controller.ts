import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import type { FastifyReply } from 'fastify';
import { BalesMetrics } from './metrics';

/** GET /metrics, served from this gateway's own registry rather than prom-client's global one. */
@ApiTags('observability')
@Controller()
export class MetricsController extends PrometheusController {
  constructor(private readonly metrics: BalesMetrics) {
    super();
  }

  @Get()
  @ApiOperation({ summary: 'Prometheus metrics', description: 'Prometheus text exposition: the bales_* metrics and Node process metrics. Absent when ENABLE_PROMETHEUS=false.' })
  @ApiProduces('text/plain')
  @ApiOkResponse({ description: 'Prometheus text format 0.0.4', schema: { type: 'string', example: 'bales_requests_total{model_id="stub_v1",status="200"} 42' } })
  override async index(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    reply.header('Content-Type', this.metrics.registry.contentType);
    return this.metrics.registry.metrics();
  }
}
