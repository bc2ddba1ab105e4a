import { Router, type Express } from 'express';
import type { Registry } from 'prom-client';
import {
  createPingApp as createProbeApp,
  createServiceApp,
  type Logger,
  type PingState,
  type ReadinessCheck,
} from '@gguf-gateway/shared';
import type { GateStatus } from './gates/gate-runner.js';
import type { ProcessStatus } from './supervisor/process.supervisor.js';

export type Phase = 'starting' | 'ready' | 'stopping' | 'failed';

export interface OrchestratorStatus {
  mode: 'prepare' | 'supervise';
  phase: Phase;
  gates: GateStatus[];
  processes: ProcessStatus[];
}

export interface OrchestratorAppDeps {
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  status?: () => OrchestratorStatus;
}

/** The orchestrator's /status of every gate and process, with /healthz, /readyz and /metrics. */
export function createApp({ logger, registry, readiness, status }: OrchestratorAppDeps): Express {
  const routes = Router();
  if (status) routes.get('/status', (_req, res) => void res.json(status()));
  return createServiceApp({ logger, registry, checks: readiness, routes: [routes] });
}

/**
 * What PORT_HEALTH says in supervise mode: initializing (204) while starting or while a crashed
 * process restarts, ready (200) once every process is ready, unavailable (503) while draining or
 * after a failed start.
 */
export function pingState(phase: Phase, processesReady: boolean): PingState {
  if (phase === 'ready') return processesReady ? 'ready' : 'initializing';
  return phase === 'starting' ? 'initializing' : 'unavailable';
}

/** PORT_HEALTH in supervise mode: the shared probe server over the phase. It reads variables, never a backend. */
export function createPingApp(phase: () => Phase, processesReady: () => boolean): Express {
  return createProbeApp(() => pingState(phase(), processesReady()));
}
