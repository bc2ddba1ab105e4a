import type { Redis } from 'ioredis';
import { redisKey, type Logger } from '@gguf-gateway/shared';

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
const ACQUIRE = `
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
return {1, 0}`;

// Record and slot go in one step: a take whose answer timed out on a hung Redis still frees the
// slot when Redis runs it, and it runs after the acquire it follows (one connection, in order).
const TAKE = `
local record = redis.call('get', KEYS[1])
if not record then return nil end
redis.call('del', KEYS[1])
local lease = cjson.decode(record)
if lease.holdsSlot then redis.call('zrem', ARGV[1] .. lease.keyId, ARGV[2]) end
return record`;

const RENEW = `
local record = redis.call('get', KEYS[1])
if not record then return 0 end
local t = redis.call('time')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
redis.call('pexpire', KEYS[1], ttl + ARGV[3] * 1000)
if redis.call('zadd', KEYS[2], 'XX', 'CH', now + ttl, ARGV[2]) == 1 then
  redis.call('pexpire', KEYS[2], ttl + 1000)
end
return 1`;

type WithScripts = Redis & {
  leaseAcquire(
    slotsKey: string,
    recordKey: string,
    ttlMs: number,
    limit: number,
    leaseId: string,
    record: string,
    graceSec: number,
  ): Promise<[number, number]>;
  leaseTake(recordKey: string, slotsKeyPrefix: string, leaseId: string): Promise<string | null>;
  leaseRenew(recordKey: string, slotsKey: string, ttlMs: number, leaseId: string, graceSec: number): Promise<number>;
};

export interface LeaseStore {
  acquire(leaseId: string, record: LeaseRecord, limit: number | null, ttlMs: number): Promise<Acquired>;
  /** Removes the lease and frees its slot; null when it was already taken (settled) or never existed. */
  take(leaseId: string): Promise<LeaseRecord | null>;
  renew(leaseId: string, ttlMs: number): Promise<boolean>;
}

export class RedisLeases implements LeaseStore {
  private readonly redis: WithScripts;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    redis.defineCommand('leaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    redis.defineCommand('leaseTake', { numberOfKeys: 1, lua: TAKE });
    redis.defineCommand('leaseRenew', { numberOfKeys: 2, lua: RENEW });
    this.redis = redis as WithScripts;
  }

  async acquire(leaseId: string, record: LeaseRecord, limit: number | null, ttlMs: number): Promise<Acquired> {
    const [ok, wait] = await this.redis.leaseAcquire(
      this.slotsKey(record.keyId),
      this.recordKey(leaseId),
      ttlMs,
      limit ?? 0,
      leaseId,
      JSON.stringify(record),
      RECORD_GRACE_SEC,
    );
    return ok === 1 ? { acquired: true } : { acquired: false, msBeforeFreeSlot: Math.max(wait, 0) };
  }

  async take(leaseId: string): Promise<LeaseRecord | null> {
    const text = await this.redis.leaseTake(this.recordKey(leaseId), this.slotsKey(''), leaseId);
    return text ? (JSON.parse(text) as LeaseRecord) : null;
  }

  async renew(leaseId: string, ttlMs: number): Promise<boolean> {
    const text = await this.redis.get(this.recordKey(leaseId));
    if (!text) return false;
    const { keyId } = JSON.parse(text) as LeaseRecord;
    return (
      (await this.redis.leaseRenew(this.recordKey(leaseId), this.slotsKey(keyId), ttlMs, leaseId, RECORD_GRACE_SEC)) ===
      1
    );
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

/**
 * Redis while it answers, memory while it does not; settle and renew look in both. A command that
 * timed out on a hung Redis may still run when Redis wakes: an acquire that fell back to memory may
 * then hold a Redis slot too. Settle takes the lease from both, so that slot is freed with the
 * other, and an acquire memory refused gives back at once what Redis may have taken.
 */
export class InsuredLeases implements LeaseStore {
  constructor(
    private readonly redis: Redis,
    private readonly shared: LeaseStore,
    private readonly local: LeaseStore,
    private readonly logger?: Logger,
  ) {}

  async acquire(leaseId: string, record: LeaseRecord, limit: number | null, ttlMs: number): Promise<Acquired> {
    if (this.redis.status !== 'ready') return this.local.acquire(leaseId, record, limit, ttlMs);
    try {
      return await this.shared.acquire(leaseId, record, limit, ttlMs);
    } catch {
      const acquired = await this.local.acquire(leaseId, record, limit, ttlMs);
      // No settle will come for a refused lease: free whatever the late acquire takes, now.
      if (!acquired.acquired) this.shared.take(leaseId).catch((err: unknown) => this.forgotten(leaseId, err));
      return acquired;
    }
  }

  async take(leaseId: string): Promise<LeaseRecord | null> {
    const [local, shared] = await Promise.all([
      this.local.take(leaseId),
      this.insured(
        () => this.shared.take(leaseId),
        () => null,
      ),
    ]);
    return local ?? shared;
  }

  async renew(leaseId: string, ttlMs: number): Promise<boolean> {
    if (await this.local.renew(leaseId, ttlMs)) return true;
    return this.insured(
      () => this.shared.renew(leaseId, ttlMs),
      () => false,
    );
  }

  private forgotten(leaseId: string, err: unknown): void {
    // Redis runs the take after the acquire even when its answer times out; only a lost connection
    // leaves the slot to expire with its TTL.
    this.logger?.debug({ err, lease: leaseId }, 'releasing a refused lease in Redis got no answer');
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
