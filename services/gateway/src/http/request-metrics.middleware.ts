import type { RequestHandler } from 'express';
import type { GatewayMetrics } from '../gateway.metrics.js';

/**
 * Counts every API answer by model, route and status once it is over (499 when the client left).
 * The route is the name the inference service set (the route table's), else `models` or `other`.
 */
export function requestMetrics(metrics: GatewayMetrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.once('close', () => {
      const route = (res.locals.route as string | undefined) ?? (req.path.startsWith('/models') ? 'models' : 'other');
      const model = (res.locals.model as string | undefined) ?? '';
      const status = (res.locals.status as number | undefined) ?? (res.writableFinished ? res.statusCode : 499);
      metrics.requests.inc({ model, route, status });
      metrics.duration.observe({ model, route }, (performance.now() - started) / 1000);
    });
    next();
  };
}
