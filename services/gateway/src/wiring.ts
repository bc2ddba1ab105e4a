import { createServer, type Server } from 'node:http';
import type { Express } from 'express';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import {
  closeServer,
  createPingApp,
  createLogger,
  createMetricsRegistry,
  createPgPool,
  createRedis,
  PullQueue,
  redisProblem,
  type BackendConfig,
  type BackendsFile,
  type Logger,
  type ShutdownStep,
} from '@gguf-gateway/shared';
import { LocalModelsRepository } from './admin/local-models.repository.js';
import { ModelPullsService } from './admin/model-pulls.service.js';
import { UsageRepository } from './admin/usage.repository.js';
import { UsageService } from './admin/usage.service.js';
import { createApp } from './app.js';
import { AuthClient } from './authorization/auth.client.js';
import { RpmWindowRepository } from './authorization/rpm-window.repository.js';
import { readBackendKey, type GatewayConfig } from './config.js';
import { UsageEventsPublisher } from './inference/usage-events.publisher.js';
import { UsageSpoolRepository } from './inference/usage-spool.repository.js';
import { kindOf } from './routing/backend-kinds.js';
import { BackendMonitor } from './routing/backend.monitor.js';
import { readBackendsFile } from './routing/backends-file.repository.js';
import { BackendsFileWatcher } from './routing/backends-file.watcher.js';
import { ModelRouter } from './routing/model-router.js';
import { ReadinessMonitor } from './routing/readiness.monitor.js';
import { buildModelsOnDemand, type ModelsOnDemand } from './models/models.wiring.js';

// A Redis that hangs must not hang a request: past this a grant-served request asks auth instead.
const REDIS_COMMAND_TIMEOUT_MS = 500;
// In-flight streams get SHUTDOWN_GRACE_MS; the steps after them (usage flush, refunds) get a margin.
const SHUTDOWN_MARGIN_MS = 10_000;

/** What a test or the bench may put in place of the parts main.ts takes from the environment. */
export interface GatewayOverrides {
  logger?: Logger;
  /** The backends table, instead of reading BACKENDS_FILE once at start. */
  backendsFile?: BackendsFile;
  /** A remote backend's key by the variable the backends file names (default: the environment). */
  readBackendKey?: (name: string) => string;
  /** Reuse auth's grants, counting rpm in the shared window (default: on). */
  grants?: boolean;
  /** Whether `/ping` and `/health` say ready (default: the readiness monitor's answer). */
  isReady?: () => boolean;
}

export interface Gateway {
  app: Express;
  /** PORT_HEALTH's `/ping`, `/readyz` details and `/metrics`; not listening yet. */
  pingServer: Server;
  logger: Logger;
  registry: Registry;
  router: ModelRouter;
  /** The request path's Redis (usage events, rpm window). */
  redis: Redis;
  /** Usage events to the stream, or to the local spool while Redis cannot take them. */
  usageEvents: UsageEventsPublisher;
  readiness: ReadinessMonitor;
  backendMonitor: BackendMonitor;
  backendsWatcher: BackendsFileWatcher;
  /** Models on demand through llama-server's router; null without MODELS_ROUTER_URL. */
  models: ModelsOnDemand | null;
  /** Starts the background polls and the backends-file watcher. */
  start(): void;
  /** Everything to close on shutdown, in order, after the API server `server` stops taking requests. */
  closeSteps(server: Server): ShutdownStep[];
  /** How long the close steps may take altogether. */
  shutdownTimeoutMs: number;
}

/** The gateway's one composition root: main.ts, the test harness and the bench all build it here. */
export async function buildGateway(config: GatewayConfig, overrides: GatewayOverrides = {}): Promise<Gateway> {
  const logger = overrides.logger ?? createLogger({ service: 'gateway', level: config.LOG_LEVEL });
  const backendKeyOf = overrides.readBackendKey ?? readBackendKey;
  // A remote backend's key comes from the variable it names; local sidecars share INFERENCE_API_KEY.
  const backendKey = (backend: BackendConfig): string | undefined =>
    backend.apiKeyEnv
      ? backendKeyOf(backend.apiKeyEnv)
      : kindOf(backend).usesInferenceKey
        ? config.INFERENCE_API_KEY
        : undefined;
  const backendsFile = overrides.backendsFile ?? (await readBackendsFile(config.BACKENDS_FILE));
  if (backendsFile.models.length === 0 && !config.MODELS_ROUTER_URL) {
    throw new Error(
      'BACKENDS_FILE names no model with tiers and MODELS_ROUTER_URL is not set: the gateway would serve nothing',
    );
  }
  const router = new ModelRouter(
    backendsFile,
    backendKey,
    { failureThreshold: config.ROUTING_FAILURE_THRESHOLD, cooldownMs: config.ROUTING_COOLDOWN_MS },
    (state, problem) =>
      problem
        ? logger.warn({ backend: state.name, problem }, 'backend cooled down')
        : logger.info({ backend: state.name }, 'backend healthy again'),
  );
  if (!config.INFERENCE_API_KEY && backendsFile.backends.some((b) => kindOf(b).usesInferenceKey)) {
    logger.warn('INFERENCE_API_KEY is not set: llama.cpp backends are called without a key');
  }
  const backendMonitor = new BackendMonitor(router, config.BACKEND_POLL_MS, config.UPSTREAM_CONNECT_TIMEOUT_MS, logger);
  const backendsWatcher = new BackendsFileWatcher(config.BACKENDS_FILE, router, config.BACKENDS_FILE_POLL_MS, logger);

  // Auto-pipelining sends the usage XADDs and rpm spends of concurrent requests in one write.
  const redis = createRedis(config.REDIS_URL, 'request-path', {
    enableAutoPipelining: true,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
  });
  redis.on('error', (err) => logger.warn({ err }, 'redis error'));
  // Only the admin API reads Postgres (usage totals, local models): a small pool the API never waits on.
  const pool = config.DATABASE_URL ? createPgPool(config.DATABASE_URL, 4) : null;
  const registry = createMetricsRegistry('gateway');
  const models = buildModelsOnDemand(config, { registry, logger, pool, localModels: () => router.localModels() });
  const auth = new AuthClient(new URL(config.AUTH_URL), config.AUTH_TIMEOUT_MS, config.AUTH_INTERNAL_TOKEN);
  // Readiness reads the backends' state as the monitor leaves it: one poller, one verdict.
  const readiness = new ReadinessMonitor(
    () => auth.problem(),
    backendMonitor,
    config.READINESS_POLL_MS,
    logger,
    models ? () => models.router.problem() : null,
  );

  // The pull queue's producer connection of its own: BullMQ must not share the auto-pipelined one.
  const pullsRedis = pool ? createRedis(config.REDIS_URL, 'request-path') : null;
  pullsRedis?.on('error', (err) => logger.warn({ err }, 'redis error (pull queue)'));
  const pullQueue = pullsRedis
    ? new PullQueue(pullsRedis, config.REDIS_KEY_PREFIX, (err) => logger.warn({ err }, 'pull queue error'))
    : null;
  const pulls = pool && pullQueue ? new ModelPullsService(pullQueue, new LocalModelsRepository(pool)) : null;
  const usage = pool ? new UsageService(new UsageRepository(pool)) : null;

  const usageEvents = new UsageEventsPublisher(
    redis,
    config.REDIS_KEY_PREFIX,
    new UsageSpoolRepository(config.USAGE_SPOOL_DIR),
    logger,
  );
  const rpmWindow = (overrides.grants ?? true) ? new RpmWindowRepository(redis, config.REDIS_KEY_PREFIX) : undefined;
  // /readyz on the API port says only ready or not; PORT_HEALTH names the check (never an address:
  // those and the errors are in the logs).
  const checks = {
    auth: () => readiness.problem('auth'),
    backends: () => readiness.problem('backends'),
    redis: () => redisProblem(redis),
  };
  // A broken reload keeps the last good table serving: a warning, not a reason to leave the load balancer.
  const degradedBy = {
    backends_file: () => backendsWatcher.problem,
    usage_spool: () =>
      usageEvents.waiting > 0 ? `${usageEvents.waiting} usage events wait in the local spool for Redis` : null,
  };
  const isReady = overrides.isReady ?? (() => readiness.ready);
  const app = createApp({
    logger,
    registry,
    readiness: checks,
    degradedBy,
    isReady,
    auth,
    router,
    usageStream: usageEvents,
    rpmWindow,
    timeouts: {
      connectMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
      firstByteMs: config.UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
      idleMs: config.UPSTREAM_IDLE_TIMEOUT_MS,
      clientStallMs: config.CLIENT_STALL_MS,
      keepAliveIdleMs: config.UPSTREAM_KEEPALIVE_IDLE_MS,
    },
    maxAttempts: config.ROUTING_MAX_ATTEMPTS,
    waitForBackendMs: config.ROUTING_WAIT_MS,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    jsonMaxDepth: config.JSON_MAX_DEPTH,
    corsOrigins: config.CORS_ORIGINS,
    trustProxyHops: config.TRUST_PROXY_HOPS,
    pulls,
    usage,
    models: models?.service ?? null,
  });
  const pingServer = createServer(
    createPingApp(() => (isReady() ? 'ready' : 'initializing'), { checks, degradedBy, registry }),
  );

  return {
    app,
    pingServer,
    logger,
    registry,
    router,
    redis,
    usageEvents,
    readiness,
    backendMonitor,
    backendsWatcher,
    models,
    start() {
      models?.service.start();
      readiness.start();
      backendMonitor.start();
      backendsWatcher.start();
      usageEvents.start();
    },
    closeSteps: (server) => [
      { name: 'http', close: () => closeServer(server, config.SHUTDOWN_GRACE_MS) },
      { name: 'ping', close: () => new Promise((resolve) => pingServer.close(resolve)) },
      { name: 'readiness', close: () => readiness.stop() },
      { name: 'backends', close: () => Promise.all([backendMonitor.stop(), backendsWatcher.stop()]) },
      { name: 'models', close: () => models?.service.stop() },
      // Settles charge the last requests' tokens: they finish before the auth connections close.
      { name: 'settles', close: () => auth.settlesDone() },
      { name: 'auth', close: () => auth.close() },
      { name: 'usage events', close: () => usageEvents.flush().then(() => usageEvents.stop()) },
      { name: 'redis', close: () => redis.quit() },
      { name: 'pull queue', close: () => pullQueue?.close() },
      { name: 'redis (pull queue)', close: () => pullsRedis?.quit() },
      { name: 'postgres', close: () => pool?.end() },
    ],
    shutdownTimeoutMs: config.SHUTDOWN_GRACE_MS + SHUTDOWN_MARGIN_MS,
  };
}
