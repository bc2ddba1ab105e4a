import {
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  createPgPool,
  createRedis,
  handleProcessErrors,
  handleShutdown,
  loadConfigOrExit,
  redisProblem,
} from '@gguf-gateway/shared';
import { LocalModelsRepository } from './admin/local-models.repository.js';
import { createModelPullsRouter } from './admin/model-pulls.router.js';
import { ModelPullsService } from './admin/model-pulls.service.js';
import { PullQueueRepository } from './admin/pull-queue.repository.js';
import { unavailableRouter } from './admin/unavailable.router.js';
import { createUsageRouter } from './admin/usage.router.js';
import { createApp } from './app.js';
import { AuthClient } from './authorization/auth.client.js';
import { anyBackendProblem } from './routing/backend-health.js';
import { BackendMonitor } from './routing/backend.monitor.js';
import type { BackendConfig } from './routing/backends-file.parser.js';
import { readBackendsFile } from './routing/backends-file.repository.js';
import { BackendsFileWatcher } from './routing/backends-file.watcher.js';
import { gatewayConfigSchema, readBackendKey } from './config.js';
import { ModelRouter } from './routing/model-router.js';
import { listenApi } from './http/api-server.js';
import { createPingServer } from './http/ping.server.js';
import { ReadinessMonitor } from './routing/readiness.monitor.js';
import { RpmReservations } from './authorization/rpm-reservations.js';
import { RpmWindowRepository } from './authorization/rpm-window.repository.js';
import { UsageEventsPublisher } from './inference/usage-events.publisher.js';

const REDIS_COMMAND_TIMEOUT_MS = 500;

const config = loadConfigOrExit(gatewayConfigSchema, { fileVariables: ['INFERENCE_API_KEY'] });
const logger = createLogger({ service: 'gateway', level: config.LOG_LEVEL });
handleProcessErrors(logger);

// A remote backend's key comes from the variable it names; llama.cpp sidecars share INFERENCE_API_KEY.
const backendKey = (backend: BackendConfig): string | undefined =>
  backend.apiKeyEnv
    ? readBackendKey(backend.apiKeyEnv)
    : backend.kind === 'llamacpp'
      ? config.INFERENCE_API_KEY
      : undefined;

let router: ModelRouter;
try {
  const backendsFile = await readBackendsFile(config.BACKENDS_FILE);
  router = new ModelRouter(
    backendsFile,
    backendKey,
    { failureThreshold: config.ROUTING_FAILURE_THRESHOLD, cooldownMs: config.ROUTING_COOLDOWN_MS },
    (state, problem) =>
      problem
        ? logger.warn({ backend: state.name, problem }, 'backend cooled down')
        : logger.info({ backend: state.name }, 'backend healthy again'),
  );
  if (!config.INFERENCE_API_KEY && backendsFile.backends.some((b) => b.kind === 'llamacpp')) {
    logger.warn('INFERENCE_API_KEY is not set: llama.cpp backends are called without a key');
  }
} catch (err) {
  logger.fatal(`BACKENDS_FILE ${config.BACKENDS_FILE}: ${(err as Error).message}`);
  process.exit(1);
}
const backendMonitor = new BackendMonitor(router, config.BACKEND_POLL_MS, config.UPSTREAM_CONNECT_TIMEOUT_MS, logger);
const backendsWatcher = new BackendsFileWatcher(config.BACKENDS_FILE, router, config.BACKENDS_FILE_POLL_MS, logger);

// Auto-pipelining sends the usage XADDs and rpm spends of concurrent requests in one write. A Redis
// that hangs must not hang a request: past the timeout a grant-served request asks auth instead.
const redis = createRedis(config.REDIS_URL, 'request-path', {
  enableAutoPipelining: true,
  commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
});
redis.on('error', (err) => logger.warn({ err }, 'redis error'));
const auth = new AuthClient(new URL(config.AUTH_URL), config.AUTH_TIMEOUT_MS);
const monitor = new ReadinessMonitor(
  {
    auth: () => auth.problem(),
    backends: () =>
      anyBackendProblem(
        router.backends().map((b) => b.backend),
        config.UPSTREAM_CONNECT_TIMEOUT_MS,
      ),
  },
  config.READINESS_POLL_MS,
  logger,
);

// Only the admin API reads Postgres (usage totals, local models): a small pool the API never waits on.
const pool = config.DATABASE_URL ? createPgPool(config.DATABASE_URL, 4) : null;
// The pull queue's producer connection of its own: BullMQ must not share the auto-pipelined one.
const pullsRedis = createRedis(config.REDIS_URL, 'request-path');
pullsRedis.on('error', (err) => logger.warn({ err }, 'redis error (pull queue)'));
const pullQueue = new PullQueueRepository(pullsRedis, config.REDIS_KEY_PREFIX);
const adminRouters = pool
  ? [
      createUsageRouter({ pool }),
      createModelPullsRouter({ pulls: new ModelPullsService(pullQueue, new LocalModelsRepository(pool)) }),
    ]
  : [
      unavailableRouter(
        ['/usage', '/models', '/models/pull', '/jobs/:id', '/jobs/:id/events'],
        'The admin API for usage and models needs DATABASE_URL on the gateway (the Postgres of the metrics service).',
      ),
    ];

const registry = createMetricsRegistry('gateway');
const usageStream = new UsageEventsPublisher(redis, config.REDIS_KEY_PREFIX);
const rpmReservations = new RpmReservations(new RpmWindowRepository(redis, config.REDIS_KEY_PREFIX), logger);
// /readyz on the API port says only ready or not; PORT_HEALTH names the check (never an address:
// those and the errors are in the logs).
const readiness = {
  auth: () => (monitor.problem('auth') === null ? null : 'the auth service is not ready'),
  backends: () =>
    monitor.problem('backends') === null
      ? null
      : `no backend answers its health check (${
          router
            .backends()
            .map((b) => b.name)
            .join(', ') || 'none configured'
        })`,
  redis: () => redisProblem(redis),
};
// A broken reload keeps the last good table serving: a warning, not a reason to leave the load balancer.
const degradedBy = { backends_file: () => backendsWatcher.problem };
const isReady = () => monitor.ready;
const app = createApp({
  logger,
  registry,
  readiness,
  degradedBy,
  isReady,
  auth,
  router,
  usageStream,
  rpmReservations,
  timeouts: {
    connectMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
    firstByteMs: config.UPSTREAM_FIRST_BYTE_TIMEOUT_MS,
    idleMs: config.UPSTREAM_IDLE_TIMEOUT_MS,
    clientStallMs: config.CLIENT_STALL_MS,
  },
  maxAttempts: config.ROUTING_MAX_ATTEMPTS,
  bodyLimitBytes: config.BODY_LIMIT_BYTES,
  jsonMaxDepth: config.JSON_MAX_DEPTH,
  corsOrigins: config.CORS_ORIGINS,
  trustProxyHops: config.TRUST_PROXY_HOPS,
  adminRouters,
});

monitor.start();
backendMonitor.start();
backendsWatcher.start();
process.on('SIGHUP', () => void backendsWatcher.reload());
const server = await listenApi(app, config.PORT, config.LISTEN_HOST, {
  headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
  requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
  maxConnections: config.HTTP_MAX_CONNECTIONS,
});
const pingServer = createPingServer(isReady, { checks: readiness, degradedBy, registry });
await new Promise<void>((resolve) => pingServer.listen(config.PORT_HEALTH, config.HEALTH_LISTEN_HOST, resolve));
logger.info(
  { port: boundPort(server), healthPort: config.PORT_HEALTH, models: router.models().map((m) => m.id) },
  'gateway listening',
);

// In-flight streams get SHUTDOWN_GRACE_MS; the steps after them (usage flush, refunds) get a margin.
const SHUTDOWN_MARGIN_MS = 10_000;
handleShutdown(
  logger,
  [
    { name: 'http', close: () => closeServer(server, config.SHUTDOWN_GRACE_MS) },
    { name: 'ping', close: () => new Promise((resolve) => pingServer.close(resolve)) },
    { name: 'readiness', close: () => monitor.stop() },
    { name: 'backends', close: () => Promise.all([backendMonitor.stop(), backendsWatcher.stop()]) },
    // Settles charge the last requests' tokens: they finish before the auth connections close.
    { name: 'settles', close: () => auth.settlesDone() },
    { name: 'auth', close: () => auth.close() },
    { name: 'usage events', close: () => usageStream.flush() },
    { name: 'rpm reservations', close: () => rpmReservations.close() },
    { name: 'redis', close: () => redis.quit() },
    { name: 'pull queue', close: () => pullQueue.close() },
    { name: 'redis (pull queue)', close: () => pullsRedis.quit() },
    { name: 'postgres', close: () => pool?.end() },
  ],
  config.SHUTDOWN_GRACE_MS + SHUTDOWN_MARGIN_MS,
);
