import type { Redis } from 'ioredis';
import { redisKey, USAGE_CONSUMER_GROUP, USAGE_STREAM, USAGE_STREAM_FIELD } from '@gguf-gateway/shared';

export interface StreamEntry {
  id: string;
  /** The raw JSON of the `event` field (undefined when the entry lacks it). */
  event: string | undefined;
}

export interface GroupStats {
  /** Delivered to a consumer, not yet acknowledged. */
  pending: number;
  /** In the stream, not yet delivered to the group (null when Redis cannot tell, after a trim by MAXLEN). */
  lag: number | null;
}

type RawEntry = [id: string, fields: string[] | null];

function toEntry([id, fields]: RawEntry): StreamEntry {
  const list = fields ?? [];
  const at = list.indexOf(USAGE_STREAM_FIELD);
  return { id, event: at >= 0 && at % 2 === 0 ? list[at + 1] : undefined };
}

function field(info: unknown[], name: string): unknown {
  const at = info.indexOf(name);
  return at >= 0 ? info[at + 1] : undefined;
}

/** The usage stream and its consumer group: the only code here that talks to Redis. */
export class UsageStreamGroupRepository {
  readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    readonly group = USAGE_CONSUMER_GROUP,
  ) {
    this.key = redisKey(prefix, USAGE_STREAM);
  }

  /** Joins (or creates) the group; a new group starts at the stream's beginning so nothing written earlier is missed. */
  async ensureGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.key, this.group, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err as Error).message.startsWith('BUSYGROUP')) throw err;
    }
  }

  /** New entries for this consumer, waiting up to `blockMs` when there are none. */
  async readNew(consumer: string, count: number, blockMs: number): Promise<StreamEntry[]> {
    const reply = (await this.redis.xreadgroup(
      'GROUP',
      this.group,
      consumer,
      'COUNT',
      count,
      'BLOCK',
      blockMs,
      'STREAMS',
      this.key,
      '>',
    )) as [string, RawEntry[]][] | null;
    return reply?.[0]?.[1].map(toEntry) ?? [];
  }

  /** Entries this consumer was given before (after a restart under the same name): its own pending list. */
  async readOwnPending(consumer: string, count: number): Promise<StreamEntry[]> {
    const reply = (await this.redis.xreadgroup(
      'GROUP',
      this.group,
      consumer,
      'COUNT',
      count,
      'STREAMS',
      this.key,
      '0',
    )) as [string, RawEntry[]][] | null;
    return reply?.[0]?.[1].map(toEntry) ?? [];
  }

  /** Takes over entries another consumer left pending for at least `minIdleMs` (it crashed). */
  async claimStale(consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]> {
    const claimed: StreamEntry[] = [];
    let cursor = '0-0';
    do {
      const [next, entries] = (await this.redis.xautoclaim(
        this.key,
        this.group,
        consumer,
        minIdleMs,
        cursor,
        'COUNT',
        count,
      )) as [string, RawEntry[], string[]];
      claimed.push(...entries.map(toEntry));
      cursor = next;
    } while (cursor !== '0-0' && claimed.length < count);
    return claimed;
  }

  async ack(ids: string[]): Promise<void> {
    if (ids.length > 0) await this.redis.xack(this.key, this.group, ...ids);
  }

  async stats(): Promise<GroupStats> {
    const groups = (await this.redis.xinfo('GROUPS', this.key)) as unknown[][];
    const info = groups.find((g) => field(g, 'name') === this.group);
    if (!info) return { pending: 0, lag: null };
    const lag = field(info, 'lag');
    return { pending: Number(field(info, 'pending')), lag: lag === null || lag === undefined ? null : Number(lag) };
  }

  /**
   * Deletes entries the group has acknowledged, and only those: everything below the oldest pending
   * entry, or below the last delivered one when nothing is pending. Returns how many were deleted.
   */
  async trimAcknowledged(): Promise<number> {
    const groups = (await this.redis.xinfo('GROUPS', this.key)) as unknown[][];
    const info = groups.find((g) => field(g, 'name') === this.group);
    if (!info) return 0;
    let minId = String(field(info, 'last-delivered-id'));
    if (Number(field(info, 'pending')) > 0) {
      const [count, oldest] = (await this.redis.xpending(this.key, this.group)) as [number, string | null];
      if (count > 0 && oldest) minId = oldest;
    }
    if (minId === '0-0') return 0;
    return this.redis.xtrim(this.key, 'MINID', minId);
  }
}
