import type { Logger } from '@gguf-gateway/shared';
import { BackgroundPoll } from './background-poll.js';

export type ProblemCheck = () => Promise<string | null>;

/**
 * Polls the gateway's dependencies in the background, so that readiness probes (/ping, /readyz)
 * read a remembered answer and never send a request to a backend themselves (scale to zero).
 */
export class ReadinessMonitor {
  private problems: Record<string, string> = {};
  private everPassed = false;
  private readonly polling: BackgroundPoll;

  constructor(
    private readonly checks: Record<string, ProblemCheck>,
    intervalMs: number,
    private readonly logger: Logger,
  ) {
    for (const name of Object.keys(checks)) this.problems[name] = 'not checked yet';
    this.polling = new BackgroundPoll(() => this.runChecks(), intervalMs);
  }

  get ready(): boolean {
    return Object.keys(this.problems).length === 0;
  }

  /** The remembered problem of one check, null when it passed. */
  problem(name: string): string | null {
    return this.problems[name] ?? null;
  }

  start(): void {
    this.polling.start();
  }

  stop(): Promise<void> {
    return this.polling.stop();
  }

  /** One round of every check; overlapping rounds are skipped. */
  poll(): Promise<void> {
    return this.polling.poll();
  }

  private async runChecks(): Promise<void> {
    const names = Object.keys(this.checks);
    const results = await Promise.all(names.map((name) => this.checks[name]!().catch((e: Error) => e.message)));
    const problems: Record<string, string> = {};
    names.forEach((name, i) => {
      if (results[i] !== null) problems[name] = results[i]!;
    });
    const wasReady = this.ready;
    this.problems = problems;
    if (this.ready && !wasReady) {
      this.logger.info(this.everPassed ? 'dependencies ready again' : 'ready: auth and a backend answer');
      this.everPassed = true;
    } else if (!this.ready && (wasReady || !this.everPassed)) {
      this.logger.warn({ problems }, this.everPassed ? 'not ready any more' : 'waiting for dependencies');
    }
  }
}
