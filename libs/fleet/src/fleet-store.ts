import type { Redis } from 'ioredis';
import type { CatalogEntry, Heartbeat } from './fleet-types';

// Deletes a lock only when it is still the caller's: a lock that expired and was taken again stays.
const UNLOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
// A model id the fleet has given a version to, but whose catalog entry is gone, was deleted: it is not seeded again.
const SEED = `if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then return 'present' end
if redis.call('hexists', KEYS[2], ARGV[1]) == 1 then return 'deleted' end
redis.call('hset', KEYS[2], ARGV[1], ARGV[3])
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
return 'seeded'`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * The fleet's shared state in Redis, under QUEUE_PREFIX: the catalog of models every replica serves, the
 * replicas' heartbeats, the last version number given to each model id, and one lock per model for calls.
 */
export class FleetStore {
  private readonly catalogKey: string;
  private readonly replicasKey: string;
  private readonly versionsKey: string;

  constructor(
    private readonly redis: () => Redis | undefined,
    private readonly prefix: string,
  ) {
    this.catalogKey = `${prefix}:fleet:catalog`;
    this.replicasKey = `${prefix}:fleet:replicas`;
    this.versionsKey = `${prefix}:fleet:versions`;
  }

  get channel(): string {
    return `${this.prefix}:fleet:calls`;
  }

  replyChannel(replica: string): string {
    return `${this.prefix}:fleet:replies:${replica}`;
  }

  private client(): Redis {
    const client = this.redis();
    if (client?.status !== 'ready') throw new Error('Redis is unreachable');
    return client;
  }

  async catalog(): Promise<Map<string, CatalogEntry>> {
    const all = await this.client().hgetall(this.catalogKey);
    const entries = new Map<string, CatalogEntry>();
    for (const [id, json] of Object.entries(all)) {
      try {
        entries.set(id, JSON.parse(json) as CatalogEntry);
      } catch {
        // A field no replica wrote is not the fleet's: skipped rather than trusted.
      }
    }
    return entries;
  }

  async entry(id: string): Promise<CatalogEntry | undefined> {
    const json = await this.client().hget(this.catalogKey, id);
    return json ? (JSON.parse(json) as CatalogEntry) : undefined;
  }

  async put(entry: CatalogEntry): Promise<void> {
    await this.client().hset(this.catalogKey, entry.id, JSON.stringify(entry));
  }

  /**
   * Adds the entry when the fleet has never known its id. An id the catalog holds is 'present'; one that was
   * given versions and left the catalog was 'deleted' fleet-wide, and stays so.
   */
  async seed(entry: CatalogEntry): Promise<'seeded' | 'present' | 'deleted'> {
    return (await this.client().eval(SEED, 2, this.catalogKey, this.versionsKey, entry.id, JSON.stringify(entry), entry.version)) as 'seeded' | 'present' | 'deleted';
  }

  async remove(id: string): Promise<void> {
    await this.client().hdel(this.catalogKey, id);
  }

  /** The next version number of a model id: never given twice, even across a delete and a new registration. */
  async nextVersion(id: string, atLeast: number): Promise<number> {
    const client = this.client();
    const next = await client.hincrby(this.versionsKey, id, 1);
    if (next >= atLeast) return next;
    await client.hset(this.versionsKey, id, atLeast);
    return atLeast;
  }

  async beat(heartbeat: Heartbeat): Promise<void> {
    await this.client().hset(this.replicasKey, heartbeat.replica_id, JSON.stringify(heartbeat));
  }

  async leave(replica: string): Promise<void> {
    await this.client().hdel(this.replicasKey, replica);
  }

  /** Live replicas' heartbeats; those past their expiry are deleted. */
  async replicas(now = Date.now()): Promise<Heartbeat[]> {
    const client = this.client();
    const all = await client.hgetall(this.replicasKey);
    const live: Heartbeat[] = [];
    const gone: string[] = [];
    for (const [id, json] of Object.entries(all)) {
      let beat: Heartbeat | undefined;
      try {
        beat = JSON.parse(json) as Heartbeat;
      } catch {
        beat = undefined;
      }
      if (beat && beat.expires_at > now) live.push(beat);
      else gone.push(id);
    }
    if (gone.length) await client.hdel(this.replicasKey, ...gone);
    return live.sort((a, b) => a.replica_id.localeCompare(b.replica_id));
  }

  /** Takes a model's call lock, or returns who holds it. */
  async lock(model: string, owner: string, ttlMs: number): Promise<{ taken: true } | { taken: false; holder: string }> {
    const key = `${this.prefix}:fleet:lock:${model}`;
    const client = this.client();
    if ((await client.set(key, owner, 'PX', ttlMs, 'NX')) === 'OK') return { taken: true };
    return { taken: false, holder: (await client.get(key)) ?? 'another replica' };
  }

  /** Keeps a lock the caller still holds for another ttlMs. */
  async renew(model: string, owner: string, ttlMs: number): Promise<void> {
    await this.client().eval(RENEW, 1, `${this.prefix}:fleet:lock:${model}`, owner, ttlMs);
  }

  async unlock(model: string, owner: string): Promise<void> {
    await this.client().eval(UNLOCK, 1, `${this.prefix}:fleet:lock:${model}`, owner);
  }

  async locked(model: string): Promise<boolean> {
    return (await this.client().exists(`${this.prefix}:fleet:lock:${model}`)) === 1;
  }
}
