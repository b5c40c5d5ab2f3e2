import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { BalesConfig } from '@bales/config';
import { BalesError, ErrorCode } from '@bales/errors';
import { ModelInfo, ModelRegistry, ModelState, PrepareRequest } from '@bales/model-registry';
import { InferenceQueue, PendingRequests, QueueConnection, QueueConsumer, RedisConnections, versionQueue } from '@bales/queue';
import { FleetCalls } from './fleet-calls';
import { FleetStore } from './fleet-store';
import type { CatalogEntry, FleetMessage, FleetReply, Heartbeat } from './fleet-types';

/** A model as one replica holds it, from its heartbeat. */
export interface ReplicaModel {
  replica_id: string;
  version: string;
  state: string;
  /** Every version whose sessions it holds: the served one, one being prepared, old ones still draining. */
  held: string[];
  reason?: string;
}

/** How often the catalog is compared with what this replica holds, besides after each call. */
const RECONCILE_MS = 2000;
/** How long joining at boot waits for the queue's connection to be ready. */
const BOOT_WAIT_MS = 2000;
/** A replica whose worker threads were busy less than this share of its last heartbeat interval has room for more. */
const ROOM_BELOW_BUSY = 0.75;

/**
 * This replica as a member of the fleet: its heartbeat, its part in every fleet-wide call (made here or on another
 * replica), and its catalog checks, which bring it to the catalog's models and versions when it joins, comes back,
 * or missed a call. Fleet makes the calls; this carries them out here.
 */
@Injectable()
export class FleetMember implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Fleet');
  readonly store: FleetStore;
  /** Open from bootstrap on. */
  calls?: FleetCalls;
  readonly self: string;
  private readonly startedAt = new Date().toISOString();
  /** The catalog's models have been loaded once: the replica may report ready. */
  private joined = false;
  /** Models of the catalog this replica could not load, with the reason. */
  readonly problems = new Map<string, string>();
  /** Models seen in the catalog: one that leaves it was deleted; one never in it (a failed folder model) stays. */
  private readonly known = new Set<string>();
  /** The catalog entry last seen for each model: where it came from, should Redis lose the catalog. */
  private readonly lastSeen = new Map<string, CatalogEntry>();
  /** Catalog models this replica does not serve at the catalog's version yet (a call committed while it joined). */
  private behind = new Map<string, number>();
  /** Digests already checked, by `id@version`. */
  private readonly checked = new Set<string>();
  /** Models being removed here (a delete), and versions being drained before their release, by `id@version`. */
  private readonly removing = new Set<string>();
  /** Versions being drained before their release, by `id@version`. */
  private readonly releasing = new Set<string>();
  private timers: NodeJS.Timeout[] = [];
  private reconciling = false;
  private live: Heartbeat[] = [];
  /** This replica's load at its previous heartbeat, for the share of time its worker threads were busy since. */
  private lastLoad = { at: performance.now(), busyMs: 0 };

  constructor(
    private readonly config: BalesConfig,
    private readonly registry: ModelRegistry,
    private readonly queue: InferenceQueue,
    private readonly consumer: QueueConsumer,
    private readonly pending: PendingRequests,
    private readonly connection: QueueConnection,
    private readonly redis: RedisConnections,
  ) {
    this.self = redis.instanceId;
    this.store = new FleetStore(() => this.connection.client, config.QUEUE_PREFIX);
  }

  /**
   * Joins the fleet before the replica listens: its catalog's models are loaded first. Should Redis still not answer
   * here, it joins at its first catalog check once Redis answers, and is not ready until then.
   */
  async onApplicationBootstrap(): Promise<void> {
    const subscriber = this.redis.open('fleet', { enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false });
    this.calls = new FleetCalls(this.store, this.self, () => this.connection.client as Redis | undefined, subscriber, (m) => this.handle(m));
    const beatEvery = (this.config.FLEET_HEARTBEAT_TTL_S * 1000) / 5;
    this.timers = [setInterval(() => void this.beat(), beatEvery).unref(), setInterval(() => void this.reconcile(), RECONCILE_MS).unref()];
    const deadline = Date.now() + BOOT_WAIT_MS;
    while (!this.connection.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.reconcile();
    await this.beat();
  }

  async beforeApplicationShutdown(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.store.leave(this.self).catch(() => undefined);
  }

  /**
   * True once this replica serves every catalog model at the catalog's version (or failed to: `failures()`), as of
   * its last catalog check.
   */
  get ready(): boolean {
    for (const [id, version] of this.behind) {
      if (!this.registry.has(id) || Number(this.registry.get(id).version) < version) return false;
    }
    return this.joined;
  }

  /** The catalog's models this replica could not load, with the reason. */
  failures(): Record<string, string> {
    return Object.fromEntries(this.problems);
  }

  /** The live replicas, as their latest heartbeats describe them. */
  replicas(): Heartbeat[] {
    return this.live;
  }

  /** Each live replica's version and state of a model. */
  replicasOf(id: string): ReplicaModel[] {
    const out: ReplicaModel[] = [];
    for (const beat of this.live) {
      const m = beat.models.find((x) => x.model_id === id);
      if (m) out.push({ replica_id: beat.replica_id, version: m.version, state: m.state, held: m.held ?? [], ...(m.reason && { reason: m.reason }) });
    }
    return out;
  }

  /** The replicas a call waits for: every live one that is not draining, and this one. */
  async targets(): Promise<string[]> {
    this.see(await this.store.replicas());
    const ids = new Set(this.live.filter((b) => !b.draining).map((b) => b.replica_id));
    ids.add(this.self);
    return [...ids];
  }

  /** A catalog entry for a model this replica serves that the catalog lacks (it was seeded before the catalog existed). */
  async entryOf(model: ModelInfo): Promise<CatalogEntry> {
    const weights = this.registry.weightsName(model.id);
    return { id: model.id, version: Number(model.version), weights, digest: await this.registry.digest(weights), origin: 'folder', task: model.task, labels: model.labels };
  }

  private async handle(message: FleetMessage): Promise<FleetReply> {
    const base = { call: message.call, replica: this.self };
    try {
      const answer = await this.carryOut(message);
      return { ...base, ok: true, ...answer };
    } catch (err) {
      const code = err instanceof BalesError ? err.code : ErrorCode.INVALID_MODEL;
      return { ...base, ok: false, code, message: (err as Error).message };
    }
  }

  private async carryOut(m: FleetMessage): Promise<{ load_ms?: number; pending?: number }> {
    switch (m.kind) {
      case 'prepare': {
        // The model's lock admits one call at a time: a version some earlier call prepared and never settled is stale.
        await this.abortPrepared(m.model, m.version);
        if (m.weights && m.digest) await this.checkDigest(m.model, m.weights, m.digest);
        const { loadMs } = await this.registry.prepare({ id: m.model, version: m.version, weightsPath: m.weights, origin: m.origin, task: m.task, labels: m.labels, maxBatchSize: m.max_batch_size, allowSignatureChange: m.allow_signature_change });
        return { load_ms: loadMs };
      }
      case 'commit': {
        if (!this.registry.version(m.model, String(m.version))) {
          // Not a party to the call (it joined meanwhile): the catalog already names the version, load it from there.
          void this.reconcile();
          return {};
        }
        this.registry.commit(m.model, m.version);
        this.known.add(m.model);
        this.problems.delete(m.model);
        // Every job admitted under the version served until now is in Redis before this replica says it switched.
        if (m.previous !== undefined) await this.queue.writesSettled(m.model, String(m.previous));
        void this.beat();
        return {};
      }
      case 'abort':
        await this.registry.abort(m.model, m.version);
        return {};
      case 'release':
        void this.drainAndRelease(m.model, m.version);
        return {};
      case 'retry': {
        if (!this.registry.has(m.model) || this.registry.get(m.model).state !== ModelState.FAILED) return {};
        // A file fixed in place must be the fleet's file, or the copy stays failed.
        const entry = await this.store.entry(m.model);
        if (entry) await this.checkDigest(m.model, m.weights === undefined ? entry.weights : this.registry.locate(m.weights), entry.digest);
        const loadMs = await this.loadAgain(m.model, entry, m.weights);
        this.problems.delete(m.model);
        return { load_ms: loadMs };
      }
      case 'stop': {
        if (!this.registry.has(m.model)) return { pending: 0 };
        const { version, pending } = this.registry.stopAdmission(m.model);
        await this.queue.writesSettled(m.model, version);
        return { pending };
      }
      case 'remove':
        this.problems.delete(m.model);
        await this.removeHere(m.model);
        return {};
    }
  }

  /**
   * Loads a failed copy again. A folder model still on its own file reads its folder again (config.json included,
   * which may be what was fixed); anything else loads the catalog's version, task and labels.
   */
  private async loadAgain(id: string, entry: CatalogEntry | undefined, weights: string | undefined): Promise<number> {
    if (!entry || weights !== undefined || (entry.origin === 'folder' && entry.weights === `${id}/model.onnx`)) return (await this.registry.reload(id, weights)).loadMs;
    const { loadMs } = await this.registry.prepare(preparedFrom(entry));
    this.registry.commit(id, entry.version);
    return loadMs;
  }

  /**
   * A deleted model's end here, once every request this replica accepted is answered: each version is released when
   * no job of it is left, the older ones first, since releasing the served one removes the model.
   */
  private async removeHere(id: string): Promise<void> {
    if (this.removing.has(id)) return;
    this.removing.add(id);
    try {
      await this.registry.drained(id);
      const versions = this.registry.runnable().filter((v) => v.id === id).map((v) => Number(v.version)).sort((a, b) => a - b);
      for (const v of versions) await this.drainAndRelease(id, v);
    } finally {
      this.removing.delete(id);
    }
  }

  /** Drops the versions of a model prepared here and never committed, but `keep`. */
  private async abortPrepared(id: string, keep: number): Promise<void> {
    const served = this.registry.has(id) ? Number(this.registry.get(id).version) : 0;
    for (const v of this.registry.runnable()) {
      if (v.id === id && Number(v.version) > served && Number(v.version) !== keep) await this.registry.abort(id, Number(v.version));
    }
  }

  /**
   * The catalog entry of what this replica serves, to write back: its version and file, and where the model came
   * from as the catalog last said (a registration is not a folder).
   */
  private async servedEntry(model: ModelInfo): Promise<CatalogEntry> {
    const entry = await this.entryOf(model);
    const seen = this.lastSeen.get(model.id);
    return seen ? { ...entry, origin: seen.origin, max_batch_size: seen.max_batch_size } : entry;
  }

  /** Releases a version here once no job of it is left anywhere: queued, fetched or running. */
  private async drainAndRelease(id: string, version: number): Promise<void> {
    const key = `${id}@${version}`;
    if (this.releasing.has(key)) return;
    this.releasing.add(key);
    try {
      await this.consumer.drained(id, String(version));
      this.registry.release(id, version);
    } finally {
      this.releasing.delete(key);
    }
  }

  /** Refuses weights whose bytes here differ from the caller's: every replica must serve the same file. */
  private async checkDigest(id: string, weights: string, digest: string): Promise<void> {
    const here = await this.registry.digest(weights);
    if (here !== digest) {
      throw new BalesError(ErrorCode.INVALID_MODEL, `${weights} differs from the fleet's file for model '${id}' (sha256 ${short(here)}… here, ${short(digest)}… in the catalog)`);
    }
  }

  private async beat(): Promise<void> {
    const runnable = this.registry.runnable();
    const held = (id: string) => runnable.filter((v) => v.id === id).map((v) => v.version);
    const models = this.registry.list().map((m) => ({ model_id: m.id, version: m.version, state: m.state, held: held(m.id), ...(m.reason && { reason: m.reason }) }));
    for (const [id, reason] of this.problems) if (!models.some((m) => m.model_id === id)) models.push({ model_id: id, version: '', state: ModelState.FAILED, held: [], reason });
    const heartbeat: Heartbeat = {
      replica_id: this.self,
      started_at: this.startedAt,
      expires_at: Date.now() + this.config.FLEET_HEARTBEAT_TTL_S * 1000,
      ready: this.joined && this.registry.ready,
      draining: !this.pending.accepting,
      models,
      ...(this.config.PROCESSOR_ENABLED && { busy: this.busySinceLastBeat() }),
    };
    try {
      await this.store.beat(heartbeat);
      this.see(await this.store.replicas());
    } catch {
      // Redis is away: the heartbeat lapses, and calls elsewhere stop waiting for this replica.
    }
  }

  /** The share of its worker threads' time this replica spent running batches since its previous heartbeat. */
  private busySinceLastBeat(): number {
    const at = performance.now();
    const { busyMs, threads } = this.consumer.load;
    const share = (busyMs - this.lastLoad.busyMs) / Math.max(1, (at - this.lastLoad.at) * threads);
    this.lastLoad = { at, busyMs };
    return Math.round(Math.min(1, share) * 100) / 100;
  }

  /**
   * Takes the live replicas' latest heartbeats, and tells the consumer which model versions another of them has
   * room to run: this replica then leaves its own busy moments' requests for those in Redis.
   */
  private see(live: Heartbeat[]): void {
    this.live = live;
    const room = new Set<string>();
    for (const beat of live) {
      if (beat.replica_id === this.self || beat.draining || beat.busy === undefined || beat.busy >= ROOM_BELOW_BUSY) continue;
      for (const m of beat.models) for (const version of m.held ?? []) room.add(versionQueue(m.model_id, version));
    }
    this.consumer.setPeerRoom(room);
  }

  /**
   * Brings this replica to the catalog: seeds it with the MODELS_DIR folders it lacks (first boot of a fleet),
   * loads each model at the catalog's version, refuses a file whose bytes differ from the catalog's, releases
   * versions and models the catalog no longer has, but not while a call on them is in progress: the call sees to
   * those. A version the catalog names, prepared here by a call whose replica died, is committed.
   */
  private async reconcile(): Promise<void> {
    if (this.reconciling || !this.registry.ready || !this.connection.connected) return;
    this.reconciling = true;
    try {
      if (!this.joined) await this.seed();
      const catalog = await this.store.catalog();
      for (const entry of catalog.values()) {
        this.known.add(entry.id);
        this.lastSeen.set(entry.id, entry);
        await this.follow(entry);
      }
      // Behind: neither serving the catalog's version nor holding it prepared (a call is committing it right now).
      this.behind = new Map([...catalog.values()].filter((e) => !this.problems.has(e.id) && !this.registry.version(e.id, String(e.version))).map((e) => [e.id, e.version]));
      for (const model of this.registry.list()) {
        if (catalog.has(model.id) || !this.known.has(model.id) || (await this.store.locked(model.id))) continue;
        if (model.state === ModelState.DRAINING) {
          // Its delete was cut short (the caller died or lost Redis after the catalog dropped it): finished here.
          void this.removeHere(model.id);
          continue;
        }
        // A Redis that came back empty knows no version of it: this replica writes what it serves back.
        const outcome = await this.store.seed(await this.servedEntry(model));
        if (outcome !== 'deleted') {
          if (outcome === 'seeded') this.logger.warn(`the fleet catalog had lost ${model.id}; written back at v${model.version}`);
          continue;
        }
        this.known.delete(model.id);
        // Deleted while this replica was away.
        this.logger.log(`model ${model.id} is no longer in the fleet catalog; removing it here`);
        this.registry.stopAdmission(model.id);
        void this.removeHere(model.id);
      }
      await this.releaseStale(catalog);
      if (!this.joined) {
        this.joined = true;
        void this.beat();
      }
    } catch (err) {
      this.redis.logError(err as Error);
    } finally {
      this.reconciling = false;
    }
  }

  /**
   * The first replica of a fleet writes the MODELS_DIR models it loaded into the catalog; later ones find them there.
   * A folder model the fleet deleted is not brought back by a replica whose image still has it.
   */
  private async seed(): Promise<void> {
    for (const model of this.registry.list()) {
      if (model.state !== ModelState.READY) continue;
      const outcome = await this.store.seed(await this.entryOf(model));
      if (outcome === 'seeded') this.logger.log(`seeded the fleet catalog with ${model.id} v${model.version}`);
      // Deleted fleet-wide before this replica came: removed here too (reconcile).
      if (outcome === 'deleted') this.known.add(model.id);
    }
  }

  private async follow(entry: CatalogEntry): Promise<void> {
    const local = this.registry.has(entry.id) ? this.registry.get(entry.id) : undefined;
    const version = String(entry.version);
    const key = `${entry.id}@${version}`;
    if (local?.state === ModelState.READY && local.version === version && this.checked.has(key)) return;
    if (local?.state === ModelState.DRAINING || local?.state === ModelState.LOADING) return;
    if (local?.state === ModelState.FAILED && local.version === version && !this.problems.has(entry.id)) return;
    try {
      await this.checkDigest(entry.id, entry.weights, entry.digest);
    } catch (err) {
      const reason = (err as Error).message;
      if (this.problems.get(entry.id) !== reason) this.logger.error(`model ${entry.id} is failed here: ${reason}`);
      this.problems.set(entry.id, reason);
      if (local?.state !== ModelState.FAILED || local.reason !== reason) this.registry.fail(entry.id, reason, sourceOf(entry));
      return;
    }
    if (local?.state === ModelState.READY && local.version === version) {
      this.checked.add(key);
      this.problems.delete(entry.id);
      return;
    }
    // Never back: a catalog read before a reload that has since committed here.
    if (local && local.state !== ModelState.FAILED && Number(local.version) > entry.version) return;
    const prepared = local && this.registry.version(entry.id, version);
    // Prepared here by a call in progress: its commit comes with the call. Prepared by a call whose replica died
    // after switching the catalog (the lock has lapsed): only the commit is missing.
    if (prepared && (await this.store.locked(entry.id))) return;
    try {
      if (!prepared) await this.registry.prepare(preparedFrom(entry));
      this.registry.commit(entry.id, entry.version);
      this.checked.add(key);
      this.problems.delete(entry.id);
      // The version served until now is drained and released by releaseStale, once no call on the model runs.
      this.logger.log(`loaded ${entry.id} v${version} from the fleet catalog`);
    } catch (err) {
      // A call is loading another version here right now: it sees to the model.
      if (err instanceof BalesError && err.code === ErrorCode.MODEL_CONFLICT) return;
      const reason = (err as Error).message;
      this.problems.set(entry.id, reason);
      this.logger.error(`model ${entry.id} v${version} from the fleet catalog does not load here: ${reason}`);
      if (!this.registry.has(entry.id)) this.registry.fail(entry.id, reason, sourceOf(entry));
    }
  }

  /** Versions left behind by a call whose replica died: a prepared one never committed is dropped, an old one drained. */
  private async releaseStale(catalog: Map<string, CatalogEntry>): Promise<void> {
    for (const { id, version } of this.registry.runnable()) {
      const entry = catalog.get(id);
      const served = this.registry.has(id) ? this.registry.get(id).version : undefined;
      // A new id prepared by a registration that never committed (its caller died, or the abort was lost).
      if (!entry && served === undefined && !(await this.store.locked(id))) {
        await this.registry.abort(id, Number(version));
        continue;
      }
      if (!entry || version === served || Number(version) === entry.version || (await this.store.locked(id))) continue;
      if (Number(version) > entry.version) await this.registry.abort(id, Number(version));
      else void this.drainAndRelease(id, Number(version));
    }
  }
}

const short = (digest: string) => digest.slice(0, 12);

/** Loading a catalog entry here, at its version: the catalog decides, so a signature change is no refusal. */
const preparedFrom = (entry: CatalogEntry): PrepareRequest => ({
  id: entry.id,
  version: entry.version,
  weightsPath: entry.weights,
  origin: entry.origin,
  task: entry.task,
  labels: entry.labels,
  maxBatchSize: entry.max_batch_size,
  allowSignatureChange: true,
});

/** Where a catalog model that cannot be held here would have come from, to keep it as failed. */
const sourceOf = (entry: CatalogEntry) => ({ version: entry.version, weightsPath: entry.weights, origin: entry.origin });
