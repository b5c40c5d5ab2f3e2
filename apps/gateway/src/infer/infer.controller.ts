import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors } from '../errors/error-response.dto';
import { InferRequestDto } from './dto/infer-request.dto';
import { InferResponseDto } from './dto/infer-response.dto';
import { InferService } from './infer.service';
import { InferenceCall } from '../common/inference-call.decorator';

@ApiTags('inference')
@Controller('infer')
export class InferController {
  constructor(private readonly inferService: InferService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Run one request', description: 'Queued with its priority, batched with concurrent requests for the same model, answered with its own row.' })
  @ApiOkResponse({
    type: InferResponseDto,
    headers: { 'Server-Timing': { description: 'latency_ms by stage: request, queue, batch, inference, return and total, each as name;dur=ms', schema: { type: 'string' } } },
  })
  @ApiErrors({
    400: 'invalid JSON, or a schema violation: priority must be an integer from 1 to 3',
    404: "model 'made_up' is not registered",
    413: 'body over MAX_BODY_BYTES',
    415: 'the body must be application/json',
    422: 'payload.input: expected float32[128] (128 values), got 3 values',
    429: 'too many rows queued for the model (MAX_QUEUE_DEPTH); Retry-After says when to retry',
    503: 'the queue (Redis) is unreachable, or this replica is shutting down; retry shortly',
    504: 'not served within timeout_ms (BATCHER_TIMEOUT_S)',
  })
  infer(@Body() body: InferRequestDto, @InferenceCall() call: InferenceCall): Promise<InferResponseDto> {
    return this.inferService.infer(body, call);
  }
}
