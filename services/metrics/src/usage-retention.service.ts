import type { Logger } from '@gguf-gateway/shared';
import type { UsageEventsRepository } from './usage-events.repository.js';

export interface UsageRetentionOptions {
  events: UsageEventsRepository;
  logger: Logger;
  retentionDays: number;
  intervalMs: number;
  /** Rows per DELETE: small, so no statement holds locks long enough to slow the writer. */
  batchSize?: number;
}

/** Deletes raw usage events older than the retention period, a small batch at a time; usage_daily stays. */
export class UsageRetention {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;
  private stopped = false;

  constructor(private readonly o: UsageRetentionOptions) {}

  start(): void {
    const tick = () => void this.runOnce().catch((err) => this.o.logger.warn({ err }, 'usage retention failed'));
    this.timer = setInterval(tick, this.o.intervalMs);
    this.timer.unref();
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass: deletes batches until none is left; returns the number of rows deleted. */
  runOnce(): Promise<number> {
    this.running ??= this.deleteAll().finally(() => (this.running = null));
    return this.running;
  }

  private async deleteAll(): Promise<number> {
    const { events, retentionDays, batchSize = 1000, logger } = this.o;
    let total = 0;
    for (;;) {
      const deleted = await events.deleteOlderThan(retentionDays, batchSize);
      total += deleted;
      if (deleted < batchSize || this.stopped) break;
    }
    if (total > 0) logger.info({ deleted: total, retentionDays }, 'deleted usage events past retention');
    return total;
  }
}
