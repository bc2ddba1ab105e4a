import type { PullPhase, PullProgress } from '@gguf-gateway/shared';

/**
 * Turns a stream of byte counts into a few progress reports per second (not one per chunk), with a
 * smoothed rate and an ETA.
 */
export class ProgressMeter {
  private phase: PullPhase = 'resolving';
  private lastAt = Date.now();
  private lastBytes = 0;
  private rate = 0;
  bytesDone = 0;
  bytesTotal = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly publish: (progress: PullProgress) => Promise<void>,
  ) {}

  snapshot(): PullProgress {
    const left = Math.max(this.bytesTotal - this.bytesDone, 0);
    const etaSec = this.rate > 0 && this.bytesTotal > 0 ? Math.ceil(left / this.rate) : null;
    return {
      phase: this.phase,
      bytesDone: this.bytesDone,
      bytesTotal: this.bytesTotal,
      bytesPerSec: Math.round(this.rate),
      etaSec,
    };
  }

  async enter(phase: PullPhase): Promise<void> {
    this.phase = phase;
    await this.publish(this.snapshot());
  }

  /** Counts bytes; true when a report is due (the caller then awaits `report`). */
  add(bytes: number): boolean {
    this.bytesDone += bytes;
    return Date.now() - this.lastAt >= this.intervalMs;
  }

  async report(): Promise<void> {
    const now = Date.now();
    const instant = ((this.bytesDone - this.lastBytes) * 1000) / Math.max(now - this.lastAt, 1);
    this.rate = this.rate === 0 ? instant : this.rate * 0.7 + instant * 0.3;
    this.lastAt = now;
    this.lastBytes = this.bytesDone;
    await this.publish(this.snapshot());
  }

  /** After a resume the bytes already on disk are not download speed. */
  restartClock(): void {
    this.lastAt = Date.now();
    this.lastBytes = this.bytesDone;
  }
}
