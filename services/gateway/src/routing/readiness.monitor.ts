import type { Logger } from '@gguf-gateway/shared';
import { BackgroundPoll } from './background-poll.js';
import type { BackendMonitor } from './backend.monitor.js';

export type ProblemCheck = () => Promise<string | null>;

export type ReadinessCheckName = 'auth' | 'backends';

/**
 * The gateway's readiness for /ping and /readyz, from remembered answers only, so that a probe never
 * sends a request anywhere (scale to zero): auth's, polled here in the background, and the
 * backends', as the BackendMonitor's last round left each BackendState, the state routing uses:
 * the load balancer never sees ready while every backend cools down.
 */
export class ReadinessMonitor {
  private authProblem: string | null = 'not checked yet';
  private modelsRouterProblem: string | null = 'not checked yet';
  private everPassed = false;
  private wasReady = false;
  private readonly polling: BackgroundPoll;

  constructor(
    private readonly authCheck: ProblemCheck,
    private readonly backends: BackendMonitor,
    intervalMs: number,
    private readonly logger: Logger,
    /** With models on demand: the models router's health. It is no backend of the routing table (its
     * models load on demand), so its answer stands beside the monitor's: either one serving is enough. */
    private readonly modelsRouterCheck: ProblemCheck | null = null,
  ) {
    this.polling = new BackgroundPoll(() => this.checkDependencies(), intervalMs);
  }

  get ready(): boolean {
    return this.problem('auth') === null && this.problem('backends') === null;
  }

  /** Why a check fails now, in words a client may read (no address: those are in the logs); null when it passes. */
  problem(name: ReadinessCheckName): string | null {
    if (name === 'auth') return this.authProblem === null ? null : 'the auth service is not ready';
    if (this.modelsRouterCheck && this.modelsRouterProblem === null) return null;
    return this.backends.problem;
  }

  start(): void {
    this.polling.start();
  }

  stop(): Promise<void> {
    return this.polling.stop();
  }

  /** One check of auth and the models router (overlapping ones are skipped), then the verdict, logged when it changed. */
  poll(): Promise<void> {
    return this.polling.poll();
  }

  private async checkDependencies(): Promise<void> {
    [this.authProblem, this.modelsRouterProblem] = await Promise.all([
      this.authCheck().catch((e: Error) => e.message),
      this.modelsRouterCheck ? this.modelsRouterCheck().catch((e: Error) => e.message) : null,
    ]);
    const ready = this.ready;
    if (ready && !this.wasReady) {
      this.logger.info(this.everPassed ? 'dependencies ready again' : 'ready: auth and a backend answer');
      this.everPassed = true;
    } else if (!ready && (this.wasReady || !this.everPassed)) {
      const problems = { auth: this.authProblem, backends: this.problem('backends') };
      this.logger.warn({ problems }, this.everPassed ? 'not ready any more' : 'waiting for dependencies');
    }
    this.wasReady = ready;
  }
}
