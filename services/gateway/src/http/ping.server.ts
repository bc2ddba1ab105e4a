import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import express from 'express';
import { createHealthRouter, notFoundHandler, type HealthOptions } from '@gguf-gateway/shared';

// `GET /ping` with RunPod load-balancer semantics: 204 while initializing, 200 once ready; `GET
// /health` says the same as JSON (200 ready, 503 initializing). Both read the background poll's
// answer and never call a backend, so a probe every second keeps scale-to-zero working. The
// health port (PORT_HEALTH) serves them, and the API port too, as the seed project's gateway did.

/** Answers a ping or health probe; false when the request is neither. */
export function answerProbe(req: IncomingMessage, res: ServerResponse, isReady: () => boolean): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const path = (req.url ?? '').split('?')[0];
  const body = (text: string) => (req.method === 'GET' ? text : undefined);
  const ready = isReady();
  if (path === '/ping') {
    res.writeHead(ready ? 200 : 204, ready ? { 'content-type': 'application/json' } : {});
    res.end(ready ? body('{"status":"ready"}') : undefined);
    return true;
  }
  if (path === '/health') {
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(body(JSON.stringify({ status: ready ? 'ready' : 'initializing', ready })));
    return true;
  }
  return false;
}

/**
 * PORT_HEALTH, not published: the probes, and with `health` the details the API port does not
 * show: `/readyz` naming each check, `/metrics` for Prometheus, `/healthz`.
 */
export function createPingServer(isReady: () => boolean, health?: HealthOptions): Server {
  const app = express();
  app.disable('x-powered-by');
  app.use((req, res, next) => {
    if (!answerProbe(req, res, isReady)) next();
  });
  if (health) app.use(createHealthRouter(health));
  app.use(notFoundHandler);
  return createServer(app);
}
