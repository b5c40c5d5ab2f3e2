import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { InferRequestDto } from './dto/infer-request.dto';
import { InferResponseDto } from './dto/infer-response.dto';
import { InferService } from './infer.service';
import { ReceivedAt } from './received-at.decorator';

@Controller('infer')
export class InferController {
  constructor(private readonly inferService: InferService) {}

  @Post()
  @HttpCode(200)
  infer(@Body() body: InferRequestDto, @ReceivedAt() receivedAt: number): Promise<InferResponseDto> {
    return this.inferService.infer(body, receivedAt);
  }
}
