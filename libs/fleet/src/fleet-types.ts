import type { ModelState, Task } from '@bales/model-registry';

/** One model as the fleet wants it served: what every replica loads, and checks it loads the same bytes of. */
export interface CatalogEntry {
  id: string;
  version: number;
  /** The weights file, as MODELS_DIR names it on every replica. */
  weights: string;
  /** sha256 of the weights file. */
  digest: string;
  /** A MODELS_DIR folder (config.json is read on each replica), or a POST /models registration. */
  origin: 'folder' | 'api';
  task?: Task;
  labels?: string[];
  max_batch_size?: number;
}

/** A replica's heartbeat: who it is, and each model version it holds with its state there. */
export interface Heartbeat {
  replica_id: string;
  started_at: string;
  /** Epoch ms past which the replica counts as gone. */
  expires_at: number;
  ready: boolean;
  draining: boolean;
  /** `held`: every version whose sessions it holds (served, prepared, or kept for work queued under it). */
  models: { model_id: string; version: string; state: ModelState; held: string[]; reason?: string }[];
  /** The share of time its worker threads ran batches since its previous heartbeat; absent without a processor. */
  busy?: number;
}

/** What the replica that took a Models API call asks of every live replica. */
export type FleetRequest =
  | { kind: 'prepare'; model: string; version: number; weights?: string; digest?: string; origin: 'folder' | 'api'; task?: Task; labels?: string[]; max_batch_size?: number; allow_signature_change?: boolean }
  /** `previous`: the version admitted until now, whose accepted requests each replica writes out before it answers. */
  | { kind: 'commit'; model: string; version: number; previous?: number }
  | { kind: 'abort'; model: string; version: number }
  | { kind: 'release'; model: string; version: number }
  | { kind: 'retry'; model: string; weights?: string }
  | { kind: 'stop'; model: string }
  | { kind: 'remove'; model: string };

export type FleetMessage = FleetRequest & { call: string; from: string };

/** One replica's answer to a FleetMessage. */
export type FleetReply = { call: string; replica: string } & ({ ok: true; load_ms?: number; pending?: number; version?: string } | { ok: false; code: string; message: string });

/** A replica's part in a call that succeeded. */
export interface ReplicaOutcome {
  replica_id: string;
  load_ms?: number;
  drained_requests?: number;
}
