import type { Logger } from '@gguf-gateway/shared';
import type { BackendState } from './backend-state.js';
import type { ModelRouter } from './model-router.js';
import { backendProblem } from './backend-health.js';
import { readBusySlots, readUtilization } from './backend-load.repository.js';

// Polls the backends in the background, never per request: llama.cpp's busy slots for least-busy
// routing, a provider's utilisation API where one is configured, and a probe of each cooled-down
// backend whose cooling period is over (a healthy answer brings it back).

export class BackendMonitor {
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;

  constructor(
    private readonly router: ModelRouter,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }

  /** One round over every backend; overlapping rounds are skipped. */
  poll(): Promise<void> {
    this.polling ??= Promise.all(this.router.backends().map((b) => this.pollOne(b)))
      .then(() => undefined)
      .finally(() => (this.polling = null));
    return this.polling;
  }

  private async pollOne(state: BackendState): Promise<void> {
    const { backend } = state;
    if (state.probeDue()) {
      const problem =
        backend.kind === 'llamacpp'
          ? await readBusySlots(backend, this.timeoutMs).then((s) => (typeof s === 'string' ? s : null))
          : await backendProblem(backend, this.timeoutMs);
      state.probed(problem);
      return;
    }
    if (state.health !== 'healthy') return;
    if (backend.kind === 'llamacpp') {
      const slots = await readBusySlots(backend, this.timeoutMs);
      if (typeof slots === 'string') {
        state.failed(slots);
        return;
      }
      state.slots = slots.total;
      state.busySlots = slots.busy;
    }
    if (backend.utilizationUrl) {
      state.utilization = await readUtilization(backend, this.timeoutMs).catch((err: Error) => {
        this.logger.debug({ backend: backend.name, err: err.message }, 'utilisation not readable');
        return null;
      });
    }
  }
}
