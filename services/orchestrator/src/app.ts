import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import {
  createHealthRouter,
  errorMiddleware,
  notFoundHandler,
  requestIdMiddleware,
  type Logger,
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
  const app = express();
  app.disable('x-powered-by');
  app.use(requestIdMiddleware);
  app.use(createHealthRouter({ checks: readiness, registry }));
  if (status) app.get('/status', (_req, res) => void res.json(status()));
  app.use(notFoundHandler);
  app.use(errorMiddleware(logger));
  return app;
}

/**
 * PORT_HEALTH in supervise mode, with RunPod load-balancer semantics: 204 while starting or while a
 * crashed process restarts, 200 once every process is ready, 503 while draining or after a failed
 * start. It reads variables, never a backend.
 */
export function createPingApp(phase: () => Phase, processesReady: () => boolean): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/ping', (_req, res) => {
    const now = phase();
    if (now === 'ready') res.status(processesReady() ? 200 : 204).end();
    else res.status(now === 'starting' ? 204 : 503).end();
  });
  app.use(notFoundHandler);
  return app;
}
