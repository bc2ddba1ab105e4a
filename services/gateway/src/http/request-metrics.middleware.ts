import type { RequestHandler } from 'express';
import type { GatewayMetrics } from '../gateway.metrics.js';

const ROUTES: Record<string, string> = {
  '/chat/completions': 'chat',
  '/completions': 'completions',
  '/embeddings': 'embeddings',
  '/models': 'models',
};

/** Counts every /v1 answer by model, route and status once it is over (499 when the client left). */
export function requestMetrics(metrics: GatewayMetrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const route = ROUTES[req.path] ?? (req.path.startsWith('/models/') ? 'models' : 'other');
    res.once('close', () => {
      const model = (res.locals.model as string | undefined) ?? '';
      const status = (res.locals.status as number | undefined) ?? (res.writableFinished ? res.statusCode : 499);
      metrics.requests.inc({ model, route, status });
      metrics.duration.observe({ model, route }, (performance.now() - started) / 1000);
    });
    next();
  };
}
