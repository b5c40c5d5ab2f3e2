/**
 * The framework ceiling for the end-to-end benchmark: the gateway's own HTTP stack (NestJS on Fastify, its
 * logger, request ids, global validation pipe and error filter, the /infer DTO and call context) answering a
 * JSON body of the gateway's size, with no queue, Redis or model behind it. The gateway cannot be faster than
 * this; the gap between it and the bare Fastify handler is what the fixed stack costs per request.
 * Started by scripts/bench/gateway.ts with PORT, HOST and BARE_ANSWER (a sample gateway answer).
 */
import 'reflect-metadata';
import { Body, Controller, Get, HttpCode, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfig } from '@bales/config';
import { BalesMetrics, createLogger } from '@bales/observability';
import { gatewayAdapter, useGatewayPipeline } from '../../apps/gateway/src/app.factory';
import { InferenceCall } from '../../apps/gateway/src/common/inference-call.decorator';
import { InferRequestDto } from '../../apps/gateway/src/infer/dto/infer-request.dto';

const sample = JSON.parse(process.env.BARE_ANSWER ?? '{}') as Record<string, unknown>;

@Controller()
class BareController {
  @Get('health')
  health() {
    return { status: 'ok' };
  }

  @Post('infer')
  @HttpCode(200)
  async infer(@Body() body: InferRequestDto, @InferenceCall() call: InferenceCall) {
    return { ...sample, request_id: call.requestId, batch_size: Array.isArray(body.payload.input) ? 1 : 0 };
  }
}

@Module({ controllers: [BareController] })
class BareModule {}

async function main(): Promise<void> {
  const config = loadConfig({ LOG_LEVEL: 'warn', ENABLE_PROMETHEUS: 'false' });
  const app = await NestFactory.create<NestFastifyApplication>(BareModule, gatewayAdapter(config, createLogger(config.LOG_LEVEL)), { logger: false });
  useGatewayPipeline(app, new BalesMetrics(config), config);
  await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
