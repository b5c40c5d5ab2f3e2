import { Module } from '@nestjs/common';
import { QueueModule } from '@bales/queue';
import { Fleet } from './fleet';

@Module({ imports: [QueueModule], providers: [Fleet], exports: [Fleet] })
export class FleetModule {}
