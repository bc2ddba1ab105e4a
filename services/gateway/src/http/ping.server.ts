import { createServer, type Server } from 'node:http';
import express, { type RequestHandler } from 'express';
import { createHealthRouter, notFoundHandler, type HealthOptions } from '@gguf-gateway/shared';

/**
 * `GET /ping` with RunPod load-balancer semantics: 204 while initializing, 200 once ready. It reads
 * the background poll's answer and never calls a backend.
 */
export function pingHandler(isReady: () => boolean): RequestHandler {
  return (req, res) => {
    if (!isReady()) return void res.status(204).end();
    res.status(200).type('application/json');
    res.end(req.method === 'HEAD' ? undefined : '{"status":"ready"}');
  };
}

/**
 * PORT_HEALTH, not published: `/ping`, and with `health` the details the API port does not show:
 * `/readyz` naming each check, `/metrics` for Prometheus, `/healthz`.
 */
export function createPingServer(isReady: () => boolean, health?: HealthOptions): Server {
  const app = express();
  app.disable('x-powered-by');
  app.get('/ping', pingHandler(isReady));
  if (health) app.use(createHealthRouter(health));
  app.use(notFoundHandler);
  return createServer(app);
}
