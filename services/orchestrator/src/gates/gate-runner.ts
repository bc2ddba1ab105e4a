import type { Logger } from '@gguf-gateway/shared';

export type GateState = 'pending' | 'waiting' | 'passed' | 'failed' | 'skipped';
export const GATE_STATES: readonly GateState[] = ['pending', 'waiting', 'passed', 'failed', 'skipped'];

/** What a passing check reports: a detail for /status, or that the gate does not apply. */
export interface GateOutcome {
  detail?: string;
  skipped?: boolean;
}

export interface Gate {
  name: string;
  /** The log line while it waits: "waiting for <waitsFor>". */
  waitsFor: string;
  /** Appended to the failure: what the user should change. */
  fix: string;
  timeoutMs: number;
  /** Retry until the timeout (a dependency still starting), or fail at the first error (a bad file). */
  retry: boolean;
  check: (signal: AbortSignal) => Promise<GateOutcome | void>;
}

export interface GateStatus {
  name: string;
  state: GateState;
  waitsFor: string;
  detail: string | null;
  lastError: string | null;
  attempts: number;
  durationMs: number | null;
}

export class GateFailure extends Error {
  constructor(
    readonly gate: string,
    message: string,
  ) {
    super(message);
    this.name = 'GateFailure';
  }
}

/** Waits between retries; its abort listener goes with it, or a long wait piles them up on the signal. */
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const onAbort = () => (clearTimeout(timer), resolve());
    const timer = setTimeout(() => (signal.removeEventListener('abort', onAbort), resolve()), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** Runs the start gates in order; each one waits, passes or fails with a message that says what to fix. */
export class GateRunner {
  private readonly status = new Map<string, GateStatus>();

  constructor(
    private readonly gates: Gate[],
    private readonly logger: Logger,
    private readonly onChange: (status: GateStatus) => void = () => undefined,
    private readonly retryIntervalMs = 500,
  ) {
    for (const gate of gates) {
      this.status.set(gate.name, {
        name: gate.name,
        state: 'pending',
        waitsFor: gate.waitsFor,
        detail: null,
        lastError: null,
        attempts: 0,
        durationMs: null,
      });
    }
  }

  statuses(): GateStatus[] {
    return [...this.status.values()].map((s) => ({ ...s }));
  }

  /** Runs the named gates (all when omitted) in their declared order; throws GateFailure at the first that fails. */
  async run(names?: readonly string[], stop: AbortSignal = new AbortController().signal): Promise<void> {
    for (const gate of this.gates) {
      if (names && !names.includes(gate.name)) continue;
      await this.runGate(gate, stop);
    }
  }

  private update(name: string, patch: Partial<GateStatus>): void {
    const next = { ...this.status.get(name)!, ...patch };
    this.status.set(name, next);
    this.onChange(next);
  }

  private async runGate(gate: Gate, stop: AbortSignal): Promise<void> {
    const started = Date.now();
    const deadline = AbortSignal.any([AbortSignal.timeout(gate.timeoutMs), stop]);
    this.update(gate.name, { state: 'waiting' });
    this.logger.info({ gate: gate.name, timeoutMs: gate.timeoutMs }, `waiting for ${gate.waitsFor}`);
    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = (await abortable(gate.check(deadline), deadline)) ?? {};
        const state: GateState = outcome.skipped ? 'skipped' : 'passed';
        this.update(gate.name, {
          state,
          detail: outcome.detail ?? null,
          lastError: null,
          attempts: attempt,
          durationMs: Date.now() - started,
        });
        this.logger.info({ gate: gate.name, detail: outcome.detail }, `gate ${gate.name} ${state}`);
        return;
      } catch (err) {
        const reason = deadline.aborted
          ? `no success within ${gate.timeoutMs} ms (last error: ${this.status.get(gate.name)!.lastError ?? (err as Error).message})`
          : (err as Error).message;
        this.update(gate.name, { lastError: reason, attempts: attempt });
        if (!gate.retry || deadline.aborted) {
          // A check may know better what to fix than the gate's usual advice (a file's access, not its format).
          const fix = (err as { fix?: unknown }).fix;
          const message = `gate ${gate.name} failed: ${reason}. ${typeof fix === 'string' ? fix : gate.fix}`;
          this.update(gate.name, { state: 'failed', durationMs: Date.now() - started });
          this.logger.error({ gate: gate.name }, message);
          throw new GateFailure(gate.name, message);
        }
        if (attempt === 1 || attempt % 10 === 0) {
          this.logger.info({ gate: gate.name, attempt, reason }, `still waiting for ${gate.waitsFor}`);
        }
        await sleep(this.retryIntervalMs, deadline);
      }
    }
  }
}

/** A check that ignores its signal still cannot hold the gate past its timeout. */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e as Error)),
    );
  });
}
