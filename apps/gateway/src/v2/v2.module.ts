import { Module } from '@nestjs/common';
import { QueueModule } from '@bales/queue';
import { HealthModule } from '../health/health.module';
import { V2Controller } from './v2.controller';
import { V2Service } from './v2.service';

@Module({ imports: [QueueModule, HealthModule], controllers: [V2Controller], providers: [V2Service] })
export class V2Module {}
