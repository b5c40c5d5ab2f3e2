import { Body, Controller, HttpCode, Post, UseInterceptors } from '@nestjs/common';
import { InferRequestDto } from './dto/infer-request.dto';
import { InferResponseDto } from './dto/infer-response.dto';
import { InferService } from './infer.service';
import { ClientGone } from './client-gone.decorator';
import { NestingLimitInterceptor } from './nesting-limit.interceptor';
import { ReceivedAt } from './received-at.decorator';

@Controller('infer')
@UseInterceptors(NestingLimitInterceptor)
export class InferController {
  constructor(private readonly inferService: InferService) {}

  @Post()
  @HttpCode(200)
  infer(@Body() body: InferRequestDto, @ReceivedAt() receivedAt: number, @ClientGone() clientGone: AbortSignal): Promise<InferResponseDto> {
    return this.inferService.infer(body, receivedAt, clientGone);
  }
}
