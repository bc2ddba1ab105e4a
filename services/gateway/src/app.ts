import { Router, type Express } from 'express';
import type { Registry } from 'prom-client';
import { answerProbe, createServiceApp, type Logger, type ReadinessCheck } from '@gguf-gateway/shared';
import { createAdminRouter, requireAdmin } from './admin/admin.router.js';
import type { ModelPullsService } from './admin/model-pulls.service.js';
import type { UsageService } from './admin/usage.service.js';
import type { AuthClient } from './authorization/auth.client.js';
import type { UpstreamTimeouts } from './inference/backend.proxy.js';
import { corsAllowlist } from './http/cors.middleware.js';
import { createGatewayMetrics } from './gateway.metrics.js';
import { InferenceService } from './inference/inference.service.js';
import type { ModelRouter } from './routing/model-router.js';
import { createModelsRouter } from './inference/models.router.js';
import { createInferenceRouter } from './inference/api.router.js';
import { API_ROUTE_TABLE } from './inference/api-routes.js';
import { RequestAuthorizer } from './authorization/request-authorizer.js';
import { requestLog } from './http/request-log.middleware.js';
import { requestMetrics } from './http/request-metrics.middleware.js';
import type { RpmWindowRepository } from './authorization/rpm-window.repository.js';
import { securityHeaders } from './http/security-headers.middleware.js';
import type { UsageEventsPublisher } from './inference/usage-events.publisher.js';
import type { ModelsService } from './models/models.service.js';

export interface GatewayAppDeps {
  logger: Logger;
  registry: Registry;
  readiness: Record<string, ReadinessCheck>;
  /** The background poll's verdict, for `/ping` and `/health`. */
  isReady: () => boolean;
  /** Problems that leave the gateway serving (a broken backends-file reload): /readyz says degraded. */
  degradedBy?: Record<string, ReadinessCheck>;
  auth: AuthClient;
  router: ModelRouter;
  usageStream: UsageEventsPublisher;
  timeouts: UpstreamTimeouts;
  /** Backends one request may try (the first attempt included). */
  maxAttempts?: number;
  /** How long a request may wait for a restarting backend of its model before 503 (0: not at all). */
  waitForBackendMs?: number;
  bodyLimitBytes: number;
  /** Deepest nesting of arrays and objects a JSON body may have. */
  jsonMaxDepth: number;
  corsOrigins?: readonly string[];
  /** X-Forwarded-For hops to trust for the client IP (0: the socket address). */
  trustProxyHops?: number;
  /** Counts grant-served requests in the shared rpm window: with it, auth's grants are reused. */
  rpmWindow?: RpmWindowRepository;
  /** The admin API's model pulls and usage totals (null without DATABASE_URL: those routes answer 503). */
  pulls?: ModelPullsService | null;
  usage?: UsageService | null;
  /** Models on demand through llama-server's router (null without MODELS_ROUTER_URL). */
  models?: ModelsService | null;
}

/** Where request metrics are counted: /v1 and llama-server's own paths of the route table. */
function meteredPaths(): string[] {
  return ['/v1', ...API_ROUTE_TABLE.flatMap((r) => r.paths).filter((p) => !p.startsWith('/v1/'))];
}

/** The public API: OpenAI, Anthropic and llama-server routes. */
export function createApp(deps: GatewayAppDeps): Express {
  const { logger, registry, auth, router, bodyLimitBytes, jsonMaxDepth } = deps;
  const metrics = createGatewayMetrics(registry, router);
  const authorizer = new RequestAuthorizer(auth, logger, deps.rpmWindow);
  const inference = new InferenceService({
    router,
    authorizer,
    usageStream: deps.usageStream,
    metrics,
    logger,
    timeouts: deps.timeouts,
    maxAttempts: deps.maxAttempts ?? 3,
    waitForBackendMs: deps.waitForBackendMs ?? 0,
    models: deps.models ?? null,
  });

  const routes = Router();
  routes.use(meteredPaths(), requestMetrics(metrics));
  routes.use(createInferenceRouter({ inference, authorizer, bodyLimitBytes, jsonMaxDepth }));
  routes.use('/v1', createModelsRouter({ router, authorizer, models: deps.models ?? null }));
  routes.use(
    '/admin/v1',
    createAdminRouter({
      auth,
      authorizer,
      bodyLimitBytes,
      jsonMaxDepth,
      pulls: deps.pulls ?? null,
      usage: deps.usage ?? null,
      models: deps.models ?? null,
    }),
  );
  return createServiceApp({
    logger,
    registry,
    checks: deps.readiness,
    degradedBy: deps.degradedBy,
    trustProxyHops: deps.trustProxyHops,
    // The seed project's probes on the API port: no key, no backend call, before any other work.
    first: [
      (req, res, next) => {
        if (!answerProbe(req, res, () => (deps.isReady() ? 'ready' : 'initializing'))) next();
      },
    ],
    middlewares: [requestLog(logger), securityHeaders(), corsAllowlist(deps.corsOrigins ?? [])],
    // The published port: /readyz without which check fails, /metrics for admin keys only (the
    // details are on PORT_HEALTH; /ping and /health are answered first, by answerProbe).
    health: { public: true, metricsGuard: requireAdmin(authorizer) },
    routes: [routes],
  });
}
