// Starts the gateway in-process on a free port, built by the same wiring as main.ts, in front of the
// given auth URL and backends file text, with a Redis key prefix of its own.
import type { Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  USAGE_STREAM,
  boundPort,
  createLogger,
  parseBackendsFile,
  redisKey,
  type UsageEvent,
} from '@gguf-gateway/shared';
import {
  LogCapture,
  TEST_AUTH_INTERNAL_TOKEN,
  deleteRedisPrefix,
  testRedisPrefix,
  testSettings,
  waitFor,
} from '@gguf-gateway/testkit';
import type { Registry } from 'prom-client';
import type { GatewayConfig } from '../../src/config.js';
import type { UpstreamTimeouts } from '../../src/inference/backend.proxy.js';
import { listenApi, type ApiServerLimits } from '../../src/http/api-server.js';
import type { BackendMonitor } from '../../src/routing/backend.monitor.js';
import type { BreakerSettings } from '../../src/routing/backend-state.js';
import type { BackendsFileWatcher } from '../../src/routing/backends-file.watcher.js';
import type { ModelRouter } from '../../src/routing/model-router.js';
import { buildGateway, type Gateway } from '../../src/wiring.js';

export interface HarnessOptions {
  authUrl: string;
  /** The backends file as text, or (backendsFile) a path that is watched for changes. */
  backendsYaml?: string;
  backendsFile?: string;
  /** Remote backends' keys by variable name (stands in for the environment). */
  backendKeys?: Record<string, string>;
  breaker?: Partial<BreakerSettings>;
  maxAttempts?: number;
  /** ROUTING_WAIT_MS: how long a request waits for a restarting backend (default 0: 503 at once). */
  waitForBackendMs?: number;
  /** Background poll of /slots and probes; without it the monitor is not started. */
  backendPollMs?: number;
  inferenceApiKey?: string;
  timeouts?: Partial<UpstreamTimeouts>;
  bodyLimitBytes?: number;
  serverLimits?: Partial<ApiServerLimits>;
  corsOrigins?: string[];
  /** Where usage events are spooled while Redis is away (default: a fresh temporary folder). */
  spoolDir?: string;
  /** Redis the usage events go to (default: the test Redis). */
  redisUrl?: string;
  /** REDIS_KEY_PREFIX, to share one with an auth instance (default: a fresh one). */
  redisPrefix?: string;
  /** Reuse auth's grants, counting rpm in the shared window, as main.ts does. */
  grants?: boolean;
  /** What /ping and /health on the API port say (default: ready). */
  isReady?: () => boolean;
  /** Models on demand (MODELS_ROUTER_URL and friends); off unless MODELS_ROUTER_URL is given. */
  models?: Partial<Pick<GatewayConfig, ModelsSetting>>;
  /** DATABASE_URL (the admin API's models and usage). */
  databaseUrl?: string;
}

type ModelsSetting =
  | 'MODELS_DIR'
  | 'MODELS_ROUTER_URL'
  | 'MODELS_MAX_LOADED'
  | 'MODELS_MEMORY_BYTES'
  | 'MODELS_MEMORY_FILE'
  | 'MODEL_LOAD_TIMEOUT_MS'
  | 'MODEL_CAPACITY_WAIT_MS'
  | 'MODEL_IDLE_UNLOAD_SEC'
  | 'MODELS_PINNED';

export class GatewayHarness {
  private constructor(
    readonly url: string,
    readonly logs: LogCapture,
    readonly registry: Registry,
    readonly redis: Redis,
    readonly prefix: string,
    private readonly server: Server,
    private readonly gateway: Gateway,
    private readonly reader: Redis,
    readonly router: ModelRouter,
    readonly backendMonitor: BackendMonitor,
    readonly watcher: BackendsFileWatcher | null,
    /** Models on demand, when MODELS_ROUTER_URL was given. */
    readonly models: Gateway['models'],
  ) {}

  static async start(options: HarnessOptions): Promise<GatewayHarness> {
    const prefix = options.redisPrefix ?? testRedisPrefix();
    const logs = new LogCapture();
    const logger = createLogger({ service: 'gateway', level: 'info', destination: logs });
    const timeouts = {
      connectMs: 2000,
      firstByteMs: 10_000,
      idleMs: 10_000,
      clientStallMs: 30_000,
      keepAliveIdleMs: 2000,
      ...options.timeouts,
    };
    const limits = {
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      maxConnections: 4096,
      ...options.serverLimits,
    };
    const breaker = { failureThreshold: 3, cooldownMs: 10_000, ...options.breaker };
    const config: GatewayConfig = {
      LOG_LEVEL: 'info',
      REDIS_KEY_PREFIX: prefix,
      PORT: 0,
      LISTEN_HOST: '127.0.0.1',
      PORT_HEALTH: 0,
      HEALTH_LISTEN_HOST: '127.0.0.1',
      REDIS_URL: options.redisUrl ?? testSettings.TEST_REDIS_URL,
      AUTH_URL: options.authUrl,
      BACKENDS_FILE: options.backendsFile ?? '',
      DATABASE_URL: options.databaseUrl,
      INFERENCE_API_KEY: options.inferenceApiKey,
      USAGE_SPOOL_DIR: options.spoolDir ?? mkdtempSync(join(tmpdir(), 'gg-usage-spool-')),
      BODY_LIMIT_BYTES: options.bodyLimitBytes ?? 1024 * 1024,
      JSON_MAX_DEPTH: 400,
      HTTP_HEADERS_TIMEOUT_MS: limits.headersTimeoutMs,
      HTTP_REQUEST_TIMEOUT_MS: limits.requestTimeoutMs,
      HTTP_MAX_CONNECTIONS: limits.maxConnections,
      CORS_ORIGINS: options.corsOrigins ?? [],
      TRUST_PROXY_HOPS: 0,
      UPSTREAM_CONNECT_TIMEOUT_MS: timeouts.connectMs,
      UPSTREAM_FIRST_BYTE_TIMEOUT_MS: timeouts.firstByteMs,
      UPSTREAM_IDLE_TIMEOUT_MS: timeouts.idleMs,
      CLIENT_STALL_MS: timeouts.clientStallMs,
      UPSTREAM_KEEPALIVE_IDLE_MS: timeouts.keepAliveIdleMs,
      AUTH_TIMEOUT_MS: 2000,
      AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
      READINESS_POLL_MS: 60_000,
      SHUTDOWN_GRACE_MS: 1000,
      ROUTING_MAX_ATTEMPTS: options.maxAttempts ?? 3,
      ROUTING_WAIT_MS: options.waitForBackendMs ?? 0,
      ROUTING_FAILURE_THRESHOLD: breaker.failureThreshold,
      ROUTING_COOLDOWN_MS: breaker.cooldownMs,
      BACKEND_POLL_MS: options.backendPollMs ?? 60_000,
      BACKENDS_FILE_POLL_MS: 50,
      MODELS_MAX_LOADED: 0,
      MODEL_LOAD_TIMEOUT_MS: 60_000,
      MODEL_CAPACITY_WAIT_MS: 30_000,
      MODEL_IDLE_UNLOAD_SEC: 0,
      MODELS_PINNED: [],
      ...options.models,
    };
    const gateway = await buildGateway(config, {
      logger,
      backendsFile: options.backendsFile ? undefined : parseBackendsFile(options.backendsYaml ?? ''),
      readBackendKey: (name) => {
        const key = options.backendKeys?.[name];
        if (key === undefined) throw new Error(`${name} (or ${name}_FILE) is not set`);
        return key;
      },
      grants: options.grants ?? false,
      isReady: options.isReady ?? (() => true),
    });
    if (!options.redisUrl) await waitFor('redis', async () => gateway.redis.status === 'ready' || null, 5000, 20);
    gateway.usageEvents.start();
    if (options.backendPollMs) gateway.backendMonitor.start();
    if (options.backendsFile) gateway.backendsWatcher.start();
    gateway.models?.service.start();
    const server = await listenApi(gateway.app, 0, '127.0.0.1', limits);
    return new GatewayHarness(
      `http://127.0.0.1:${boundPort(server)}`,
      logs,
      gateway.registry,
      gateway.redis,
      prefix,
      server,
      gateway,
      new Redis(testSettings.TEST_REDIS_URL),
      gateway.router,
      gateway.backendMonitor,
      options.backendsFile ? gateway.backendsWatcher : null,
      gateway.models,
    );
  }

  /** Every usage event written so far, oldest first. */
  async usageEvents(): Promise<UsageEvent[]> {
    const entries = await this.reader.xrange(redisKey(this.prefix, USAGE_STREAM), '-', '+');
    return entries.map(([, fields]) => JSON.parse(fields[1]!) as UsageEvent);
  }

  /** Waits for the usage event of one request: the x-request-id the client sent, or the gateway's. */
  async usageEvent(requestId: string): Promise<UsageEvent> {
    return waitFor(
      `usage event of ${requestId}`,
      async () => (await this.usageEvents()).find((e) => (e.clientRequestId ?? e.requestId) === requestId),
      2000,
      10,
    );
  }

  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = (await this.registry.getMetricsAsJSON()).find((m) => m.name === name);
    const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
    return values
      .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
      .reduce((sum, v) => sum + v.value, 0);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    // The same close steps as main.ts; a step whose dependency a test took away (Redis) may fail.
    for (const step of this.gateway.closeSteps(this.server)) await Promise.resolve(step.close()).catch(() => undefined);
    this.redis.disconnect();
    this.reader.disconnect();
    await deleteRedisPrefix(this.prefix);
  }
}
