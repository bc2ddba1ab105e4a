/**
 * Runs `round` now and then every `intervalMs` in the background. A round still running is never
 * started a second time: a slow dependency delays the next round instead of piling them up.
 */
export class BackgroundPoll {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly round: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One round now, or the one already running. */
  poll(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = null));
    return this.running;
  }
}
