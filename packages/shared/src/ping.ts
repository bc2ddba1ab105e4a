import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express } from 'express';
import { createHealthRouter, type HealthOptions } from './health.js';
import { notFoundHandler } from './errors.js';

// The load balancer's probes, with RunPod's semantics: `GET /ping` answers 204 while initializing,
// 200 once ready and 503 when the instance will not serve (draining, a failed start); `GET /health`
// says the same as JSON. Both read a remembered state and never call a dependency, so a probe every
// second keeps scale-to-zero working. The gateway's PORT_HEALTH and, in supervise mode, the
// orchestrator's serve them from here.

export type PingState = 'initializing' | 'ready' | 'unavailable';

const PING_STATUS: Record<PingState, number> = { initializing: 204, ready: 200, unavailable: 503 };

/** Answers a ping or health probe; false when the request is neither. */
export function answerProbe(req: IncomingMessage, res: ServerResponse, state: () => PingState): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const path = (req.url ?? '').split('?')[0];
  const body = (text: string) => (req.method === 'GET' ? text : undefined);
  const now = state();
  if (path === '/ping') {
    const ready = now === 'ready';
    res.writeHead(PING_STATUS[now], ready ? { 'content-type': 'application/json' } : {});
    res.end(ready ? body('{"status":"ready"}') : undefined);
    return true;
  }
  if (path === '/health') {
    const ready = now === 'ready';
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(body(JSON.stringify({ status: now, ready })));
    return true;
  }
  return false;
}

/**
 * The health port (not published): the probes, and with `health` the details a published port does
 * not show: `/readyz` naming each check, `/metrics` for Prometheus, `/healthz`.
 */
export function createPingApp(state: () => PingState, health?: HealthOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use((req, res, next) => {
    if (!answerProbe(req, res, state)) next();
  });
  if (health) app.use(createHealthRouter(health));
  app.use(notFoundHandler);
  return app;
}
