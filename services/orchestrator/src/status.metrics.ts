import { Counter, Gauge, type Registry } from 'prom-client';
import { GATE_STATES, type GateStatus } from './gates/gate-runner.js';
import type { ProcessStatus } from './supervisor/process.supervisor.js';

/** `orchestrator_gate_state{gate,state}` (1 for the current state), process up and restart counts. */
export function createStatusMetrics(registry: Registry) {
  const gateState = new Gauge({
    name: 'orchestrator_gate_state',
    help: 'Start gate state: 1 for the current state of pending|waiting|passed|failed|skipped',
    labelNames: ['gate', 'state'],
    registers: [registry],
  });
  const processUp = new Gauge({
    name: 'orchestrator_process_up',
    help: 'Supervised process is ready (1) or not (0)',
    labelNames: ['process'],
    registers: [registry],
  });
  const restarts = new Counter({
    name: 'orchestrator_process_restarts_total',
    help: 'Restarts of a supervised process after it exited',
    labelNames: ['process'],
    registers: [registry],
  });
  return {
    gate(status: GateStatus): void {
      for (const state of GATE_STATES) gateState.set({ gate: status.name, state }, state === status.state ? 1 : 0);
    },
    process(status: ProcessStatus): void {
      processUp.set({ process: status.name }, status.state === 'ready' ? 1 : 0);
    },
    restart(name: string): void {
      restarts.inc({ process: name });
    },
  };
}

export type StatusMetrics = ReturnType<typeof createStatusMetrics>;
