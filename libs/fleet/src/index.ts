export { FleetModule } from './fleet.module';
export { Fleet } from './fleet';
export type { ReplicaModel } from './fleet-member';
export type { CatalogEntry, Heartbeat, ReplicaOutcome } from './fleet-types';
