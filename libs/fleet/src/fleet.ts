import { Injectable, Logger } from '@nestjs/common';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { MODEL_ID_PATTERN, MODEL_ID_RULE, ModelInfo, ModelRegistry, ModelState, RegisterRequest, ReloadOutcome, UnloadOutcome } from '@bales/model-registry';
import { QueueConnection } from '@bales/queue';
import { FleetCalls, RefusedCall, Replies } from './fleet-calls';
import { FleetMember, ReplicaModel } from './fleet-member';
import type { CatalogEntry, Heartbeat, ReplicaOutcome } from './fleet-types';

/**
 * One model state across every replica on one Redis: the Models API's calls, made on this replica and carried out on
 * every live one in two phases (load beside, then switch) under a per-model lock, and what the fleet looks like.
 * Each replica's own part in them is FleetMember's.
 */
@Injectable()
export class Fleet {
  private readonly logger = new Logger('Fleet');

  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly connection: QueueConnection,
    private readonly member: FleetMember,
  ) {}

  /** The member's pub/sub calls, open from bootstrap on (Models API calls come after it). */
  private get calls(): FleetCalls {
    return this.member.calls!;
  }

  /** This replica's id in the fleet. */
  get self(): string {
    return this.member.self;
  }

  /** True once this replica serves every catalog model at the catalog's version (or failed to: `failures()`). */
  get ready(): boolean {
    return this.member.ready;
  }

  /** The catalog's models this replica could not load, with the reason. */
  failures(): Record<string, string> {
    return this.member.failures();
  }

  /** The live replicas, as their latest heartbeats describe them. */
  replicas(): Heartbeat[] {
    return this.member.replicas();
  }

  /** Each live replica's version and state of a model. */
  replicasOf(id: string): ReplicaModel[] {
    return this.member.replicasOf(id);
  }

  /** Serves a new model on every live replica: each loads it, and it is shown only once all of them have. */
  async register(req: RegisterRequest): Promise<{ model: ModelInfo; replicas: ReplicaOutcome[] }> {
    this.checkReachable();
    if (!MODEL_ID_PATTERN.test(req.id)) throw new BalesError(ErrorCode.INVALID_REQUEST, MODEL_ID_RULE);
    const local = this.registry.has(req.id) ? this.registry.get(req.id) : undefined;
    if (local && local.state !== ModelState.FAILED) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' already exists`);
    const weights = this.registry.locate(req.weightsPath);
    return this.locked(req.id, 'register', async () => {
      const existing = await this.member.store.entry(req.id);
      if (existing && !local && !this.member.problems.has(req.id)) throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${req.id}' already exists`);
      const digest = await this.registry.digest(weights);
      const version = await this.member.store.nextVersion(req.id, (existing?.version ?? 0) + 1);
      const entry: CatalogEntry = { id: req.id, version, weights, digest, origin: 'api', task: req.task, labels: req.labels, max_batch_size: req.maxBatchSize };
      const prepared = await this.prepareEverywhere(entry, false);
      await this.member.store.put(entry);
      await this.commitEverywhere(entry, prepared, existing?.version);
      if (existing) this.calls.tell({ kind: 'release', model: req.id, version: existing.version });
      return { model: this.registry.get(req.id), replicas: outcomes(prepared) };
    });
  }

  /**
   * A fleet-wide hot swap: every live replica loads and warms the new weights beside the old (prepare); only when
   * all have does the catalog switch and every replica admit new requests under the new version (commit). Work
   * admitted before runs on the version it was admitted under, which is released once its queue is empty.
   * Without weights_path, a model that failed on some replicas is loaded again there.
   */
  async reload(id: string, weightsPath: string | undefined, allowSignatureChange: boolean): Promise<ReloadOutcome & { replicas: ReplicaOutcome[] }> {
    this.checkReachable();
    const local = this.registry.get(id);
    if (weightsPath === undefined) return this.retry(id, local);
    const weights = this.registry.locate(weightsPath);
    return this.locked(id, 'reload', async () => {
      const current = (await this.member.store.entry(id)) ?? (await this.member.entryOf(local));
      const digest = await this.registry.digest(weights);
      const version = await this.member.store.nextVersion(id, current.version + 1);
      const entry: CatalogEntry = { ...current, version, weights, digest };
      const started = performance.now();
      const prepared = await this.prepareEverywhere(entry, allowSignatureChange);
      await this.member.store.put(entry);
      await this.commitEverywhere(entry, prepared, current.version);
      this.calls.tell({ kind: 'release', model: id, version: current.version });
      const loadMs = Math.round((performance.now() - started) * 1000) / 1000;
      this.logger.log(`reloaded ${id} on ${prepared.size} replicas: v${current.version} -> v${version} in ${loadMs.toFixed(0)} ms`);
      return { modelId: id, oldVersion: String(current.version), newVersion: String(version), loadMs, replicas: outcomes(prepared) };
    });
  }

  /** Stops admission of a model on every live replica, answers every request accepted anywhere, then releases it everywhere. */
  async unregister(id: string): Promise<UnloadOutcome & { replicas: ReplicaOutcome[] }> {
    this.checkReachable();
    const local = this.registry.get(id);
    return this.locked(id, 'delete', async () => {
      const started = performance.now();
      const timeout = this.config.FLEET_CALL_TIMEOUT_S * 1000;
      // Gone from the catalog first: a replica the calls miss finishes the delete at its next catalog check.
      await this.member.store.remove(id);
      const stopped = await this.calls.call({ kind: 'stop', model: id }, await this.member.targets(), timeout);
      await this.calls.call({ kind: 'remove', model: id }, [...stopped.keys()], timeout);
      const drained = [...stopped.values()].reduce((n, r) => n + (r.pending ?? 0), 0);
      const drainMs = Math.round((performance.now() - started) * 1000) / 1000;
      this.logger.log(`deleted ${id} on ${stopped.size} replicas after draining ${drained} requests in ${drainMs.toFixed(0)} ms`);
      return { modelId: id, version: local.version, drainedRequests: drained, drainMs, replicas: [...stopped.values()].map((r) => ({ replica_id: r.replica, drained_requests: r.pending ?? 0 })) };
    });
  }

  /** Loads a model again on each replica where it failed, from weights_path when given, else from where it came. */
  private async retry(id: string, local: ModelInfo): Promise<ReloadOutcome & { replicas: ReplicaOutcome[] }> {
    const failedSomewhere = local.state === ModelState.FAILED || this.replicasOf(id).some((r) => r.state === ModelState.FAILED);
    if (!failedSomewhere) {
      throw new BalesError(ErrorCode.INVALID_REQUEST, `weights_path is required to hot-swap model '${id}', which is ready; only a failed model is loaded again without one`);
    }
    return this.locked(id, 'reload', async () => {
      const started = performance.now();
      const replies = await this.call({ kind: 'retry', model: id });
      const loadMs = Math.round((performance.now() - started) * 1000) / 1000;
      const model = this.registry.get(id);
      return { modelId: id, oldVersion: local.version, newVersion: model.version, loadMs, replicas: outcomes(replies) };
    });
  }

  /** Runs `work` holding the model's call lock: a second call on the same model, on any replica, gets 409 meanwhile. */
  private async locked<T>(id: string, what: string, work: () => Promise<T>): Promise<T> {
    const owner = `${this.self}:${what}`;
    // Renewed while the call runs, so the lock of a replica killed mid-call lapses within the heartbeat TTL.
    const ttlMs = this.config.FLEET_HEARTBEAT_TTL_S * 1000;
    const lock = await this.member.store.lock(id, owner, ttlMs).catch(() => {
      throw unreachable();
    });
    if (!lock.taken) {
      const [replica, call] = lock.holder.split(/:(?=[^:]*$)/);
      throw new BalesError(ErrorCode.MODEL_CONFLICT, `model '${id}' has a ${call ?? 'call'} in progress, started on replica ${replica}; retry once it ends`);
    }
    const renewal = setInterval(() => void this.member.store.renew(id, owner, ttlMs).catch(() => undefined), ttlMs / 3);
    try {
      return await work();
    } catch (err) {
      // A Redis command that failed mid-call is the fleet being unreachable, not a fault of the request.
      throw err instanceof BalesError || err instanceof RefusedCall ? this.explain(err) : unreachable();
    } finally {
      clearInterval(renewal);
      await this.member.store.unlock(id, owner).catch(() => undefined);
    }
  }

  private async prepareEverywhere(entry: CatalogEntry, allowSignatureChange: boolean): Promise<Replies> {
    const { id: model, version, weights, digest, origin, task, labels, max_batch_size } = entry;
    try {
      return await this.call({ kind: 'prepare', model, version, weights, digest, origin, task, labels, max_batch_size, allow_signature_change: allowSignatureChange });
    } catch (err) {
      // None switch: the replicas that loaded the version release it.
      this.calls.tell({ kind: 'abort', model, version });
      throw err;
    }
  }

  private async commitEverywhere(entry: CatalogEntry, prepared: Replies, previous?: number): Promise<void> {
    await this.calls.call({ kind: 'commit', model: entry.id, version: entry.version, previous }, [...prepared.keys()], this.config.FLEET_CALL_TIMEOUT_S * 1000);
  }

  private async call(request: Parameters<FleetCalls['call']>[0]): Promise<Replies> {
    return this.calls.call(request, await this.member.targets(), this.config.FLEET_CALL_TIMEOUT_S * 1000);
  }

  /**
   * A refusal as the client sees it: the replica's own error and message, and `replica_id` naming each replica that
   * refused (the message names them too when they refused for different reasons).
   */
  private explain(err: unknown): unknown {
    if (!(err instanceof RefusedCall)) return err;
    const first = err.refusals[0];
    const code = (Object.values(ErrorCode) as string[]).includes(first.code) ? (first.code as ErrorCode) : ErrorCode.INFERENCE_FAILED;
    const same = err.refusals.every((r) => r.message === first.message);
    return new BalesError(code, same ? first.message : err.message, { replica_id: err.refusals.map((r) => r.replica).join(', ') });
  }

  private checkReachable(): void {
    if (!this.connection.connected) throw unreachable();
  }
}

const unreachable = () => new BalesError(ErrorCode.QUEUE_UNAVAILABLE, 'the fleet (Redis) is unreachable, so no replica can be told; retry shortly');

const outcomes = (replies: Replies): ReplicaOutcome[] => [...replies.values()].map((r) => ({ replica_id: r.replica, ...(r.load_ms !== undefined && { load_ms: r.load_ms }) }));
