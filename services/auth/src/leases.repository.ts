import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { redisKey } from '@gguf-gateway/shared';

/** What settle needs to know about an authorized request. */
export interface LeaseRecord {
  keyId: string;
  model: string | null;
  /** Whether the lease holds one of the key's concurrency slots. */
  holdsSlot: boolean;
}

export type Acquired = { acquired: true } | { acquired: false; msBeforeFreeSlot: number };

// A lease record outlives its slot, so that a stream settled after its slot expired is still charged.
const RECORD_GRACE_SEC = 3600;

// Slots are a sorted set per key scored by expiry (Redis clock, shared by every replica): expired
// members are dropped before counting, so a crashed gateway leaks a slot for one TTL at most.
/** A Lua script sent by its sha1 (EVALSHA), and in full only when Redis does not know it yet. */
class Script {
  private readonly sha: string;
  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err as Error).message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

const ACQUIRE = new Script(`
local t = redis.call('time')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit > 0 then
  redis.call('zremrangebyscore', KEYS[1], '-inf', now)
  if redis.call('zcard', KEYS[1]) >= limit then
    local first = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, tonumber(first[2]) - now}
  end
  redis.call('zadd', KEYS[1], now + ttl, ARGV[3])
  redis.call('pexpire', KEYS[1], ttl + 1000)
end
redis.call('set', KEYS[2], ARGV[4], 'PX', ttl + ARGV[5] * 1000)
return {1, 0}`);

const TAKE = new Script(`
local record = redis.call('get', KEYS[1])
if record then redis.call('del', KEYS[1]) end
return record`);

const RENEW = new Script(`
local record = redis.call('get', KEYS[1])
if not record then return 0 end
local t = redis.call('time')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
redis.call('pexpire', KEYS[1], ttl + ARGV[3] * 1000)
if redis.call('zadd', KEYS[2], 'XX', 'CH', now + ttl, ARGV[2]) == 1 then
  redis.call('pexpire', KEYS[2], ttl + 1000)
end
return 1`);

export interface LeaseStore {
  acquire(leaseId: string, record: LeaseRecord, limit: number | null, ttlMs: number): Promise<Acquired>;
  /** Removes the lease and frees its slot; null when it was already taken (settled) or never existed. */
  take(leaseId: string): Promise<LeaseRecord | null>;
  renew(leaseId: string, ttlMs: number): Promise<boolean>;
}

export class RedisLeases implements LeaseStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async acquire(leaseId: string, record: LeaseRecord, limit: number | null, ttlMs: number): Promise<Acquired> {
    const keys = [this.slotsKey(record.keyId), this.recordKey(leaseId)];
    const args = [ttlMs, limit ?? 0, leaseId, JSON.stringify(record), RECORD_GRACE_SEC];
    const [ok, wait] = (await ACQUIRE.run(this.redis, keys, args)) as [number, number];
    return ok === 1 ? { acquired: true } : { acquired: false, msBeforeFreeSlot: Math.max(wait, 0) };
  }

  async take(leaseId: string): Promise<LeaseRecord | null> {
    const text = (await TAKE.run(this.redis, [this.recordKey(leaseId)], [])) as string | null;
    if (!text) return null;
    const record = JSON.parse(text) as LeaseRecord;
    if (record.holdsSlot) await this.redis.zrem(this.slotsKey(record.keyId), leaseId);
    return record;
  }

  async renew(leaseId: string, ttlMs: number): Promise<boolean> {
    const text = (await this.redis.get(this.recordKey(leaseId))) as string | null;
    if (!text) return false;
    const { keyId } = JSON.parse(text) as LeaseRecord;
    const keys = [this.recordKey(leaseId), this.slotsKey(keyId)];
    return (await RENEW.run(this.redis, keys, [ttlMs, leaseId, RECORD_GRACE_SEC])) === 1;
  }

  private slotsKey(keyId: string): string {
    return redisKey(this.prefix, `auth:slots:${keyId}`);
  }

  private recordKey(leaseId: string): string {
    return redisKey(this.prefix, `auth:lease:${leaseId}`);
  }
}

/** The same leases in this process's memory: the insurance while Redis is away. */
export class MemoryLeases implements LeaseStore {
  private readonly records = new Map<string, { record: LeaseRecord; slotExpiresAt: number; timer: NodeJS.Timeout }>();

  acquire(leaseId: string, record: LeaseRecord, limit: number | null, ttlMs: number): Promise<Acquired> {
    const now = Date.now();
    if (limit !== null) {
      const held = [...this.records.values()]
        .filter((r) => r.record.keyId === record.keyId && r.record.holdsSlot && r.slotExpiresAt > now)
        .map((r) => r.slotExpiresAt);
      if (held.length >= limit) return Promise.resolve({ acquired: false, msBeforeFreeSlot: Math.min(...held) - now });
    }
    const timer = setTimeout(() => this.records.delete(leaseId), ttlMs + RECORD_GRACE_SEC * 1000).unref();
    this.records.set(leaseId, { record, slotExpiresAt: now + ttlMs, timer });
    return Promise.resolve({ acquired: true });
  }

  take(leaseId: string): Promise<LeaseRecord | null> {
    const held = this.records.get(leaseId);
    if (!held) return Promise.resolve(null);
    clearTimeout(held.timer);
    this.records.delete(leaseId);
    return Promise.resolve(held.record);
  }

  renew(leaseId: string, ttlMs: number): Promise<boolean> {
    const held = this.records.get(leaseId);
    if (held) held.slotExpiresAt = Date.now() + ttlMs;
    return Promise.resolve(held !== undefined);
  }
}

/** Redis while it answers, memory while it does not; settle and renew look in both. */
export class InsuredLeases implements LeaseStore {
  constructor(
    private readonly redis: Redis,
    private readonly shared: LeaseStore,
    private readonly local: LeaseStore,
  ) {}

  acquire(leaseId: string, record: LeaseRecord, limit: number | null, ttlMs: number): Promise<Acquired> {
    return this.insured(
      () => this.shared.acquire(leaseId, record, limit, ttlMs),
      () => this.local.acquire(leaseId, record, limit, ttlMs),
    );
  }

  async take(leaseId: string): Promise<LeaseRecord | null> {
    return (
      (await this.local.take(leaseId)) ??
      this.insured(
        () => this.shared.take(leaseId),
        () => null,
      )
    );
  }

  async renew(leaseId: string, ttlMs: number): Promise<boolean> {
    if (await this.local.renew(leaseId, ttlMs)) return true;
    return this.insured(
      () => this.shared.renew(leaseId, ttlMs),
      () => false,
    );
  }

  private async insured<T>(shared: () => Promise<T>, local: () => Promise<T> | T): Promise<T> {
    if (this.redis.status !== 'ready') return local();
    try {
      return await shared();
    } catch {
      return local();
    }
  }
}
