import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { FleetModule } from '@bales/fleet';
import { QueueModule } from '@bales/queue';
import { HealthController } from './health.controller';
import { ProbesService } from './probes.service';
import { ReplicaGauges } from './replica-gauges';

// A failing readiness check is an expected state (Redis away, shutdown), answered in the body, not logged as an error.
@Module({ imports: [QueueModule, FleetModule, TerminusModule.forRoot({ logger: false })], controllers: [HealthController], providers: [ProbesService, ReplicaGauges], exports: [ProbesService] })
export class HealthModule {}
