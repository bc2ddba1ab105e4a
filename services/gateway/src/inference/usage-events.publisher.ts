import type { Redis } from 'ioredis';
import { USAGE_STREAM, USAGE_STREAM_FIELD, redisKey, type Logger, type UsageEvent } from '@gguf-gateway/shared';
import type { UsageSpoolRepository } from './usage-spool.repository.js';

// Every usage event reaches the stream or, while Redis cannot take it, the local spool file; the
// spool is replayed onto the stream once Redis answers again. Replaying is idempotent by request
// id: an event that reached the stream before a failure and is sent again is one row, since the
// metrics service writes each request id once.

// Back-pressure instead of a MAXLEN trim that deleted the oldest events uncounted: past this many
// entries (a metrics service that stopped reading for long) new events wait in the spool.
const STREAM_MAX_LENGTH = 1_000_000;
// Events are written in batches, one Redis round trip for all the requests that ended within this
// (or for this many), instead of one per request.
const BATCH_WINDOW_MS = 5;
const MAX_BATCH = 256;
const REPLAY_INTERVAL_MS = 1000;

// Adds every event of the batch, or none when the stream is full.
const ADD_IF_ROOM = `
if redis.call('xlen', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
for i = 3, #ARGV do redis.call('xadd', KEYS[1], '*', ARGV[2], ARGV[i]) end
return #ARGV - 2`;

type WithScript = Redis & {
  usageAddIfRoom(stream: string, maxLength: number, field: string, ...events: string[]): Promise<number>;
};

interface Pending {
  event: UsageEvent;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class UsageEventsPublisher {
  private readonly stream: string;
  private readonly redis: WithScript;
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private replayTimer: NodeJS.Timeout | null = null;
  private replaying: Promise<void> | null = null;
  /** Events written to the spool and not replayed yet (by this process). */
  private spooled = 0;

  constructor(
    redis: Redis,
    prefix: string,
    private readonly spool: UsageSpoolRepository,
    private readonly logger: Logger,
    private readonly maxStreamLength = STREAM_MAX_LENGTH,
  ) {
    redis.defineCommand('usageAddIfRoom', { numberOfKeys: 1, lua: ADD_IF_ROOM });
    this.redis = redis as WithScript;
    this.stream = redisKey(prefix, USAGE_STREAM);
  }

  /** Events waiting in the local spool for Redis (readiness says degraded meanwhile). */
  get waiting(): number {
    return this.spooled;
  }

  /** Replays what an earlier run left in the spool, then looks for spooled events every second. */
  start(): void {
    void this.replay();
    this.replayTimer = setInterval(() => void this.replay(), REPLAY_INTERVAL_MS);
    this.replayTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.replayTimer) clearInterval(this.replayTimer);
    this.replayTimer = null;
    await this.replaying;
  }

  /** Resolves once the event is on the stream or in the spool; rejects only when neither took it. */
  append(event: UsageEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      if (this.pending.length >= MAX_BATCH) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), BATCH_WINDOW_MS);
    });
  }

  /** Writes what is waiting now (on shutdown, before Redis closes). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const events = batch.map((p) => p.event);
    const problem = await this.add(events);
    if (problem === null) {
      for (const { resolve } of batch) resolve();
      return;
    }
    try {
      await this.spool.append(events);
      this.spooled += events.length;
      this.logger.warn({ events: events.length, problem }, 'usage events spooled locally until Redis takes them');
      for (const { resolve } of batch) resolve();
    } catch (err) {
      for (const { reject } of batch) reject(err as Error);
    }
  }

  /** Null once every event is on the stream; else why none of them is. */
  private async add(events: UsageEvent[]): Promise<string | null> {
    try {
      const added = await this.redis.usageAddIfRoom(
        this.stream,
        this.maxStreamLength,
        USAGE_STREAM_FIELD,
        ...events.map((e) => JSON.stringify(e)),
      );
      return added === events.length ? null : `the stream holds ${this.maxStreamLength} unread events`;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Sends spooled events to the stream, file by file; a file goes only once all of it is there. */
  private replay(): Promise<void> {
    this.replaying ??= this.replayFiles().finally(() => (this.replaying = null));
    return this.replaying;
  }

  private async replayFiles(): Promise<void> {
    try {
      for (const file of await this.spool.takeForReplay()) {
        const { events, unreadable } = await this.spool.read(file);
        if (unreadable > 0) this.logger.error({ file, unreadable }, 'spooled usage lines that are not events');
        for (let i = 0; i < events.length; i += MAX_BATCH) {
          if ((await this.add(events.slice(i, i + MAX_BATCH))) !== null) {
            this.spooled = Math.max(this.spooled, events.length - i);
            return;
          }
        }
        await this.spool.remove(file);
        this.spooled = Math.max(0, this.spooled - events.length);
        this.logger.info({ events: events.length }, 'spooled usage events replayed onto the stream');
      }
    } catch (err) {
      this.logger.warn({ err }, 'usage spool replay failed; retrying');
    }
  }
}
