import express, { Router } from 'express';
import { API_ROUTE_TABLE } from './api-routes.js';
import { useErrorShape } from './error-shapes.js';
import type { InferenceService } from './inference.service.js';

/** Every inference route of the table, each at each of its paths; thin: the service does the work. */
export function createInferenceRouter(inference: InferenceService, bodyLimitBytes: number): Router {
  const api = Router();
  const json = express.json({ limit: bodyLimitBytes });
  for (const route of API_ROUTE_TABLE) {
    // The shape is set first, so that a body too large or not JSON is refused in it too.
    const shape: express.RequestHandler = (_req, res, next) => {
      useErrorShape(res, route.errors);
      next();
    };
    for (const path of route.paths) {
      api.post(path, shape, json, (req, res) => inference.handle(route, req, res));
    }
  }
  return api;
}
