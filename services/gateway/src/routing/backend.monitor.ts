import type { Logger } from '@gguf-gateway/shared';
import type { BackendState } from './backend-state.js';
import type { ModelRouter } from './model-router.js';
import { BackgroundPoll } from './background-poll.js';
import { backendProblem, keyRefused } from './backend-health.js';
import { kindOf } from './backend-kinds.js';
import { readUtilization, type SlotLoad } from './backend-load.repository.js';

// The one poller of the backends, in the background, never per request: each backend's health as
// its kind defines it (llama.cpp's busy slots, which also feed least-busy routing), a provider's
// utilisation API where one is configured, and a probe of each cooled-down backend whose cooling
// period is over (a healthy answer brings it back). Routing and readiness both read what it leaves
// in each BackendState.

// Cooled-down backends are probed on a faster tick than the load poll, so that a restarted one is
// back within a fraction of a second of answering.
const PROBE_TICK_MS = 200;

export class BackendMonitor {
  private readonly polling: BackgroundPoll;
  /** When each healthy backend was last polled (performance.now()). */
  private readonly polledAt = new WeakMap<BackendState, number>();
  /** Why no backend counts for readiness, as the last whole round found; null when one does. */
  private notReady: string | null = 'not polled yet';

  constructor(
    private readonly router: ModelRouter,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {
    const round = async () => {
      await Promise.all(this.router.backends().map((b) => this.pollOne(b)));
      this.notReady = this.readinessProblem();
    };
    this.polling = new BackgroundPoll(round, Math.min(intervalMs, PROBE_TICK_MS));
  }

  /**
   * Why the gateway cannot serve, by the backends' state at the end of the last round (null when
   * some backend is in rotation and answering). Read at the end of a round, a reload that swaps in
   * backends not polled yet does not take the gateway out of the load balancer before their poll.
   */
  get problem(): string | null {
    return this.notReady;
  }

  start(): void {
    this.polling.start();
  }

  stop(): Promise<void> {
    return this.polling.stop();
  }

  /** One round over every backend; overlapping rounds are skipped. */
  poll(): Promise<void> {
    return this.polling.poll();
  }

  private async pollOne(state: BackendState): Promise<void> {
    const { backend } = state;
    if (state.keyProbeWanted) {
      state.keyProbeWanted = false;
      if (await keyRefused(backend, kindOf(backend).keyedPath, this.timeoutMs)) {
        this.logger.warn({ backend: backend.name }, "the backend refuses the gateway's key");
        state.answering = false;
        state.coolDown("the backend refused the gateway's key");
        return;
      }
    }
    if (state.probeDue()) {
      const problem = await this.ask(state);
      state.probed(problem === null ? null : this.unanswered(state, problem));
      return;
    }
    if (state.health !== 'healthy') return;
    const now = performance.now();
    if (now - (this.polledAt.get(state) ?? -Infinity) < this.intervalMs) return;
    // A path-asked backend's failures are logged when it stops answering, not at every poll.
    const worthLogging = state.answering || !this.polledAt.has(state);
    this.polledAt.set(state, now);
    const problem = await this.ask(state);
    if (problem !== null && 'load' in kindOf(backend).health) state.failed(this.unanswered(state, problem));
    else if (problem !== null && worthLogging) this.unanswered(state, problem);
    if (backend.utilizationUrl) {
      state.utilization = await readUtilization(backend, this.timeoutMs).catch((err: Error) => {
        this.logger.debug({ backend: backend.name, err: err.message }, 'utilisation not readable');
        return null;
      });
    }
  }

  /** The kind's health question; remembers the answer (and the load it read), null when it answered. */
  private async ask(state: BackendState): Promise<string | null> {
    const { health } = kindOf(state.backend);
    let problem: string | null;
    if ('load' in health) {
      const load = await health.load(state.backend, this.timeoutMs);
      if (typeof load !== 'string') this.remember(state, load);
      problem = typeof load === 'string' ? load : null;
    } else {
      problem = await backendProblem(state.backend, health.path, this.timeoutMs);
    }
    state.answering = problem === null;
    return problem;
  }

  private readinessProblem(): string | null {
    const backends = this.router.backends();
    if (backends.some((b) => b.ready)) return null;
    return `no backend answers its health check (${backends.map((b) => b.name).join(', ') || 'none configured'})`;
  }

  /**
   * Logs what a poll found (an address, an error text) and returns the state a client may read in
   * a 503: the backend's problem is shown to callers, its detail stays in the logs.
   */
  private unanswered(state: BackendState, detail: string): string {
    this.logger.warn({ backend: state.name, problem: detail }, 'backend poll failed');
    return 'not answering its health checks';
  }

  private remember(state: BackendState, slots: SlotLoad): void {
    state.slots = slots.total;
    state.busySlots = slots.busy;
  }
}
