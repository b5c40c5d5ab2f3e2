import { Module } from '@nestjs/common';
import { QueueModule } from '@bales/queue';
import { InferController } from './infer.controller';
import { InferService } from './infer.service';

@Module({ imports: [QueueModule], controllers: [InferController], providers: [InferService] })
export class InferModule {}
