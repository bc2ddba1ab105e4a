import { setTimeout as sleep } from 'node:timers/promises';
import { costUsd, type Logger, type PriceTable } from '@gguf-gateway/shared';
import { parseUsageEvent, statusClass } from './usage-event.parser.js';
import {
  isDataError,
  type RejectedEvent,
  type UsageEventsRepository,
  type UsageRow,
} from './usage-events.repository.js';
import type { GroupStats, StreamEntry, UsageStreamGroupRepository } from './usage-stream-group.repository.js';
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
  /**
   * The group's backlog, read on a connection other than the consumer's own (which blocks in
   * XREADGROUP), for `degradation()`.
   */
  backlog?: () => Promise<GroupStats>;
  /** Readiness samples of the backlog closer together than this count as one. */
  backlogSampleMs?: number;
}

const MAX_BACKOFF_MS = 5000;
/** Write failures in a row after which readiness reports `degraded`. */
const FAILURES_BEFORE_DEGRADED = 3;
/** Backlog samples that must each be larger than the one before for readiness to say it keeps growing. */
const GROWING_SAMPLES = 5;
/** Most characters of a rejected entry kept in usage_rejected_events. */
const MAX_REJECTED_CHARS = 16_384;

/** A row to write and the stream entry it came from. */
interface PendingRow {
  entryId: string;
  raw: string | undefined;
  row: UsageRow;
}

/** Text Postgres accepts (no NUL), of a bounded length. */
function storable(text: string): string {
  return text.replaceAll('\u0000', '\\u0000').slice(0, MAX_REJECTED_CHARS);
}

/**
 * Moves usage events from the stream into Postgres, exactly once: a batch is acknowledged only
 * after its transaction commits, so a crash or a Postgres outage leaves it pending in Redis, and
 * the request id makes writing it again harmless.
 */
export class UsageStreamConsumer {
  private running = false;
  private loop: Promise<void> | null = null;
  private joined = false;
  private failuresInARow = 0;
  private lastFailure = '';
  private readonly backlogSamples: { at: number; backlog: number }[] = [];

  constructor(private readonly o: UsageStreamConsumerOptions) {}

  /** Readiness: null once the consumer group is joined. */
  problem(): string | null {
    return this.joined ? null : 'usage stream consumer group not joined yet';
  }

  /**
   * Readiness (`degraded`, still serving): null while events flow into Postgres; otherwise why they
   * do not: writes failing again and again, or a backlog that grows at every look.
   */
  async degradation(): Promise<string | null> {
    if (this.failuresInARow >= FAILURES_BEFORE_DEGRADED) {
      return `writing usage events failed ${this.failuresInARow} times in a row (${this.lastFailure}); they wait in Redis`;
    }
    if (!this.o.backlog) return null;
    const { lag, pending } = await this.o.backlog();
    const samples = this.backlogSamples;
    const now = Date.now();
    const last = samples.at(-1);
    const sample = { at: now, backlog: (lag ?? 0) + pending };
    if (last && now - last.at < (this.o.backlogSampleMs ?? 1000)) samples[samples.length - 1] = sample;
    else samples.push(sample);
    if (samples.length > GROWING_SAMPLES) samples.shift();
    const growing =
      samples.length === GROWING_SAMPLES && samples.every((s, i) => i === 0 || s.backlog > samples[i - 1]!.backlog);
    if (!growing) return null;
    return `the usage backlog keeps growing (${samples[0]!.backlog} -> ${sample.backlog} events not yet written)`;
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
        this.failuresInARow = 0;
      } catch (err) {
        failures += 1;
        this.failed(err);
        if ((err as Error).message.startsWith('NOGROUP')) this.joined = false;
        logger.warn({ err }, 'usage stream read failed; retrying');
        await sleep(Math.min(100 * 2 ** failures, MAX_BACKOFF_MS));
      }
    }
  }

  private failed(err: unknown): void {
    this.failuresInARow += 1;
    this.lastFailure = (err as Error).message;
  }

  /** The entries as rows to write, and those that are no usage event at all (set aside). */
  private toRows(entries: StreamEntry[]): { rows: PendingRow[]; rejected: RejectedEvent[] } {
    const rows = new Map<string, PendingRow>();
    const rejected: RejectedEvent[] = [];
    for (const entry of entries) {
      const event = parseUsageEvent(entry.event);
      if (typeof event === 'string') {
        rejected.push({ streamEntryId: entry.id, requestId: null, event: entry.event ?? null, reason: event });
        continue;
      }
      const cost = costUsd(this.o.prices, event.model, event.promptTokens, event.completionTokens);
      rows.set(event.requestId, { entryId: entry.id, raw: entry.event, row: { ...event, costUsd: cost } });
    }
    return { rows: [...rows.values()], rejected };
  }

  /**
   * Writes the batch until Postgres takes it (it stays pending in Redis meanwhile), then acks. A
   * batch that Postgres refuses for its data is split until the refused entries stand alone; those
   * are set aside with the reason and the rest is written: one bad value never stops metering.
   */
  private async writeUntilDone(entries: StreamEntry[]): Promise<void> {
    const { stream, metrics, logger } = this.o;
    const { rows, rejected: unparsed } = this.toRows(entries);
    // Kept across attempts: rows an attempt wrote before it failed count once, when they went in.
    const inserted = new Set<string>();
    let rejected: RejectedEvent[];
    for (let attempt = 1; ; attempt++) {
      try {
        rejected = [...unparsed];
        await this.insertSplitting(rows, inserted, rejected);
        await this.setAside(rejected);
        break;
      } catch (err) {
        metrics.writeFailures.inc();
        this.failed(err);
        logger.warn({ err, rows: rows.length, attempt }, 'writing usage events failed; they stay pending in Redis');
        if (!this.running) return;
        await sleep(Math.min(200 * 2 ** attempt, MAX_BACKOFF_MS));
        if (!this.running) return;
      }
    }
    await stream.ack(entries.map((e) => e.id));
    for (const r of rejected) {
      metrics.invalid.inc();
      logger.warn({ entryId: r.streamEntryId, requestId: r.requestId, problem: r.reason }, 'set aside a usage event');
    }
    this.count(rows.filter((r) => inserted.has(r.row.requestId)).map((r) => r.row));
    await stream.trimAcknowledged();
  }

  /** Inserts the rows; on a data error, each half on its own, down to the single rows refused. */
  private async insertSplitting(rows: PendingRow[], inserted: Set<string>, rejected: RejectedEvent[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      for (const id of await this.o.events.insertBatch(rows.map((r) => r.row))) inserted.add(id);
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (rows.length === 1) {
        const [{ entryId, raw, row }] = rows as [PendingRow];
        const reason = `postgres refused the row: ${(err as Error).message}`;
        rejected.push({ streamEntryId: entryId, requestId: row.requestId, event: raw ?? null, reason });
        return;
      }
      const half = Math.ceil(rows.length / 2);
      await this.insertSplitting(rows.slice(0, half), inserted, rejected);
      await this.insertSplitting(rows.slice(half), inserted, rejected);
    }
  }

  private async setAside(rejected: RejectedEvent[]): Promise<void> {
    const rows = rejected.map((r) => ({
      ...r,
      event: r.event === null ? null : storable(r.event),
      reason: storable(r.reason),
    }));
    try {
      await this.o.events.reject(rows);
    } catch (err) {
      // Made storable above, so this should not happen; if it does, retrying could only loop.
      if (!isDataError(err)) throw err;
      this.o.logger.error({ err, entryIds: rows.map((r) => r.streamEntryId) }, 'could not set usage events aside');
    }
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
