import type { Logger } from '@gguf-gateway/shared';
import type { BackendState } from './backend-state.js';
import type { ModelRouter } from './model-router.js';
import { BackgroundPoll } from './background-poll.js';
import { backendProblem, keyRefused } from './backend-health.js';
import { readBusySlots, readUtilization, type SlotLoad } from './backend-load.repository.js';

// Polls the backends in the background, never per request: llama.cpp's busy slots for least-busy
// routing, a provider's utilisation API where one is configured, and a probe of each cooled-down
// backend whose cooling period is over (a healthy answer brings it back).

// Cooled-down backends are probed on a faster tick than the load poll, so that a restarted one is
// back within a fraction of a second of answering.
const PROBE_TICK_MS = 200;

export class BackendMonitor {
  private readonly polling: BackgroundPoll;
  /** When each healthy backend's load was last read (performance.now()). */
  private readonly polledAt = new WeakMap<BackendState, number>();

  constructor(
    private readonly router: ModelRouter,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {
    const round = () => Promise.all(this.router.backends().map((b) => this.pollOne(b))).then(() => undefined);
    this.polling = new BackgroundPoll(round, Math.min(intervalMs, PROBE_TICK_MS));
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
      if (await keyRefused(backend, this.timeoutMs)) {
        this.logger.warn({ backend: backend.name }, "the backend refuses the gateway's key");
        state.coolDown("the backend refused the gateway's key");
        return;
      }
    }
    if (state.probeDue()) {
      if (backend.kind === 'llamacpp') {
        const slots = await readBusySlots(backend, this.timeoutMs);
        if (typeof slots !== 'string') this.remember(state, slots);
        state.probed(typeof slots === 'string' ? this.unanswered(state, slots) : null);
      } else {
        const problem = await backendProblem(backend, this.timeoutMs);
        state.probed(problem === null ? null : this.unanswered(state, problem));
      }
      return;
    }
    if (state.health !== 'healthy') return;
    const now = performance.now();
    if (now - (this.polledAt.get(state) ?? -Infinity) < this.intervalMs) return;
    this.polledAt.set(state, now);
    if (backend.kind === 'llamacpp') {
      const slots = await readBusySlots(backend, this.timeoutMs);
      if (typeof slots === 'string') {
        state.failed(this.unanswered(state, slots));
        return;
      }
      this.remember(state, slots);
    }
    if (backend.utilizationUrl) {
      state.utilization = await readUtilization(backend, this.timeoutMs).catch((err: Error) => {
        this.logger.debug({ backend: backend.name, err: err.message }, 'utilisation not readable');
        return null;
      });
    }
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
