import { Router, type RequestHandler } from 'express';
import type { RequestAuthorizer } from '../authorization/request-authorizer.js';
import { requireValidKey } from '../authorization/key-check.middleware.js';
import { jsonBody } from '../http/json-body.middleware.js';
import { API_ROUTE_TABLE } from './api-routes.js';
import { useErrorShape } from './error-shapes.js';
import type { InferenceService } from './inference.service.js';

export interface InferenceRouterDeps {
  inference: InferenceService;
  authorizer: RequestAuthorizer;
  bodyLimitBytes: number;
  /** Deepest nesting of arrays and objects a JSON body may have. */
  jsonMaxDepth: number;
}

/** Every inference route of the table, each at each of its paths; thin: the service does the work. */
export function createInferenceRouter(deps: InferenceRouterDeps): Router {
  const { inference, authorizer } = deps;
  const api = Router();
  // The key is checked from the headers before a byte of the body is read or parsed.
  const checkKey = requireValidKey(authorizer);
  const body = jsonBody(deps.bodyLimitBytes, deps.jsonMaxDepth);
  for (const route of API_ROUTE_TABLE) {
    // The shape is set first, so that a missing key, a body too large or not JSON is refused in it too.
    const shapeThenKey: RequestHandler = (req, res, next) => {
      useErrorShape(res, route.errors);
      return checkKey(req, res, next);
    };
    for (const path of route.paths) {
      api.post(path, shapeThenKey, body, (req, res) => inference.handle(route, req, res));
    }
  }
  return api;
}
