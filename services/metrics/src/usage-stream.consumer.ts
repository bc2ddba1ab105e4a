import { setTimeout as sleep } from 'node:timers/promises';
import { costUsd, type Logger, type PriceTable } from '@gguf-gateway/shared';
import { parseUsageEvent, statusClass } from './usage-event.parser.js';
import type { UsageEventsRepository, UsageRow } from './usage-events.repository.js';
import type { StreamEntry, UsageStreamGroupRepository } from './usage-stream-group.repository.js';
import type { UsageMetrics } from './usage.metrics.js';

export interface UsageStreamConsumerOptions {
  stream: UsageStreamGroupRepository;
  events: UsageEventsRepository;
  prices: PriceTable;
  metrics: UsageMetrics;
  logger: Logger;
  consumer: string;
  batchSize: number;
  claimIdleMs: number;
  /** How long one read waits for new entries; also the longest stop() waits for the loop. */
  blockMs?: number;
}

const MAX_BACKOFF_MS = 5000;

/**
 * Moves usage events from the stream into Postgres, exactly once: a batch is acknowledged only
 * after its transaction commits, so a crash or a Postgres outage leaves it pending in Redis, and
 * the request id makes writing it again harmless.
 */
export class UsageStreamConsumer {
  private running = false;
  private loop: Promise<void> | null = null;
  private joined = false;

  constructor(private readonly o: UsageStreamConsumerOptions) {}

  /** Readiness: null once the consumer group is joined. */
  problem(): string | null {
    return this.joined ? null : 'usage stream consumer group not joined yet';
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Finishes the batch in hand (or leaves it pending when Postgres is away) and stops reading. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    const { stream, consumer, batchSize, claimIdleMs, logger } = this.o;
    const blockMs = this.o.blockMs ?? 2000;
    let ownPendingLeft = true;
    let nextClaimAt = 0;
    let failures = 0;
    while (this.running) {
      try {
        if (!this.joined) {
          await stream.ensureGroup();
          this.joined = true;
          logger.info({ stream: stream.key, group: stream.group, consumer }, 'usage stream consumer joined');
        }
        let entries: StreamEntry[] = [];
        // After a restart under the same name, this consumer's own unacknowledged entries come first.
        if (ownPendingLeft) {
          entries = await stream.readOwnPending(consumer, batchSize);
          ownPendingLeft = entries.length > 0;
        }
        if (entries.length === 0 && Date.now() >= nextClaimAt) {
          nextClaimAt = Date.now() + Math.max(claimIdleMs / 2, 1000);
          entries = await stream.claimStale(consumer, claimIdleMs, batchSize);
          if (entries.length > 0)
            logger.warn({ count: entries.length }, 'claimed entries a stopped consumer left pending');
        }
        if (entries.length === 0) entries = await stream.readNew(consumer, batchSize, blockMs);
        if (entries.length > 0) await this.writeUntilDone(entries);
        failures = 0;
      } catch (err) {
        failures += 1;
        if ((err as Error).message.startsWith('NOGROUP')) this.joined = false;
        logger.warn({ err }, 'usage stream read failed; retrying');
        await sleep(Math.min(100 * 2 ** failures, MAX_BACKOFF_MS));
      }
    }
  }

  private toRows(entries: StreamEntry[]): UsageRow[] {
    const rows = new Map<string, UsageRow>();
    for (const entry of entries) {
      const event = parseUsageEvent(entry.event);
      if (typeof event === 'string') {
        this.o.metrics.invalid.inc();
        this.o.logger.warn({ entryId: entry.id, problem: event }, 'skipping an invalid usage event');
        continue;
      }
      const cost = costUsd(this.o.prices, event.model, event.promptTokens, event.completionTokens);
      rows.set(event.requestId, { ...event, costUsd: cost });
    }
    return [...rows.values()];
  }

  /** Retries the batch until Postgres takes it (it is still pending in Redis meanwhile), then acks. */
  private async writeUntilDone(entries: StreamEntry[]): Promise<void> {
    const { events, stream, metrics, logger } = this.o;
    const rows = this.toRows(entries);
    let inserted = new Set<string>();
    for (let attempt = 1; rows.length > 0; attempt++) {
      try {
        inserted = await events.insertBatch(rows);
        break;
      } catch (err) {
        metrics.writeFailures.inc();
        logger.warn({ err, rows: rows.length, attempt }, 'writing usage events failed; they stay pending in Redis');
        if (!this.running) return;
        await sleep(Math.min(200 * 2 ** attempt, MAX_BACKOFF_MS));
        if (!this.running) return;
      }
    }
    await stream.ack(entries.map((e) => e.id));
    this.count(rows.filter((r) => inserted.has(r.requestId)));
    await stream.trimAcknowledged();
  }

  private count(rows: UsageRow[]): void {
    const { metrics } = this.o;
    metrics.written.inc(rows.length);
    for (const row of rows) {
      const labels = { key_id: row.keyId, model: row.model };
      metrics.requests.inc({ ...labels, status_class: statusClass(row) });
      metrics.tokens.inc({ ...labels, kind: 'prompt' }, row.promptTokens);
      metrics.tokens.inc({ ...labels, kind: 'completion' }, row.completionTokens);
      metrics.cost.inc(labels, row.costUsd);
    }
  }
}
