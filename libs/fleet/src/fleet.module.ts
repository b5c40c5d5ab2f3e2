import { Module } from '@nestjs/common';
import { QueueModule } from '@bales/queue';
import { Fleet } from './fleet';
import { FleetMember } from './fleet-member';

@Module({ imports: [QueueModule], providers: [FleetMember, Fleet], exports: [Fleet] })
export class FleetModule {}
