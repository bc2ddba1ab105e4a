// Starts the gateway app in-process on a free port, wired like main.ts, in front of the given auth
// URL and backends file text, with a Redis key prefix of its own.
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import {
  USAGE_STREAM,
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  redisKey,
  type UsageEvent,
} from '@gguf-gateway/shared';
import { LogCapture, deleteRedisPrefix, testRedisPrefix, testSettings, waitFor } from '@gguf-gateway/testkit';
import type { Registry } from 'prom-client';
import type { Router } from 'express';
import { createApp } from '../../src/app.js';
import { AuthClient } from '../../src/authorization/auth.client.js';
import { BackendMonitor } from '../../src/routing/backend.monitor.js';
import type { BreakerSettings } from '../../src/routing/backend-state.js';
import { parseBackendsFile } from '../../src/routing/backends-file.parser.js';
import { readBackendsFile } from '../../src/routing/backends-file.repository.js';
import { BackendsFileWatcher } from '../../src/routing/backends-file.watcher.js';
import { ModelRouter } from '../../src/routing/model-router.js';
import { RpmReservations } from '../../src/authorization/rpm-reservations.js';
import { RpmWindowRepository } from '../../src/authorization/rpm-window.repository.js';
import { UsageEventsPublisher } from '../../src/inference/usage-events.publisher.js';
import type { UpstreamTimeouts } from '../../src/inference/backend.proxy.js';
import { listenApi, type ApiServerLimits } from '../../src/http/api-server.js';

export interface HarnessOptions {
  authUrl: string;
  /** The backends file as text, or (backendsFile) a path that is watched for changes. */
  backendsYaml?: string;
  backendsFile?: string;
  /** Remote backends' keys by variable name (stands in for the environment). */
  backendKeys?: Record<string, string>;
  breaker?: Partial<BreakerSettings>;
  maxAttempts?: number;
  /** Background poll of /slots and probes; without it the monitor is not started. */
  backendPollMs?: number;
  inferenceApiKey?: string;
  timeouts?: Partial<UpstreamTimeouts>;
  bodyLimitBytes?: number;
  serverLimits?: Partial<ApiServerLimits>;
  corsOrigins?: string[];
  adminRouters?: Router[];
  /** Redis the usage events go to (default: the test Redis). */
  redisUrl?: string;
  /** REDIS_KEY_PREFIX, to share one with an auth instance (default: a fresh one). */
  redisPrefix?: string;
  /** Reuse auth's grants, counting rpm in the shared window, as main.ts does. */
  grants?: boolean;
}

export class GatewayHarness {
  private constructor(
    readonly url: string,
    readonly logs: LogCapture,
    readonly registry: Registry,
    readonly redis: Redis,
    readonly prefix: string,
    private readonly server: Server,
    private readonly auth: AuthClient,
    private readonly reader: Redis,
    readonly router: ModelRouter,
    readonly backendMonitor: BackendMonitor,
    readonly watcher: BackendsFileWatcher | null,
  ) {}

  static async start(options: HarnessOptions): Promise<GatewayHarness> {
    const prefix = options.redisPrefix ?? testRedisPrefix();
    const logs = new LogCapture();
    const logger = createLogger({ service: 'gateway', level: 'info', destination: logs });
    const redis = new Redis(options.redisUrl ?? testSettings.TEST_REDIS_URL, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: () => 200,
    });
    redis.on('error', () => undefined);
    if (!options.redisUrl) await waitFor('redis', async () => redis.status === 'ready' || null, 5000, 20);
    const file = options.backendsFile
      ? await readBackendsFile(options.backendsFile)
      : parseBackendsFile(options.backendsYaml ?? '');
    const router = new ModelRouter(
      file,
      (b) => {
        if (!b.apiKeyEnv) return b.kind === 'llamacpp' ? options.inferenceApiKey : undefined;
        const key = options.backendKeys?.[b.apiKeyEnv];
        if (key === undefined) throw new Error(`${b.apiKeyEnv} (or ${b.apiKeyEnv}_FILE) is not set`);
        return key;
      },
      { failureThreshold: 3, cooldownMs: 10_000, ...options.breaker },
    );
    const backendMonitor = new BackendMonitor(router, options.backendPollMs ?? 60_000, 1000, logger);
    if (options.backendPollMs) backendMonitor.start();
    const watcher = options.backendsFile ? new BackendsFileWatcher(options.backendsFile, router, 50, logger) : null;
    watcher?.start();
    const auth = new AuthClient(new URL(options.authUrl), 2000);
    const registry = createMetricsRegistry('gateway');
    const app = createApp({
      logger,
      registry,
      readiness: {},
      isReady: () => true,
      auth,
      router,
      usageStream: new UsageEventsPublisher(redis, prefix),
      rpmReservations: options.grants ? new RpmReservations(new RpmWindowRepository(redis, prefix), logger) : undefined,
      timeouts: { connectMs: 2000, firstByteMs: 10_000, idleMs: 10_000, clientStallMs: 30_000, ...options.timeouts },
      maxAttempts: options.maxAttempts,
      bodyLimitBytes: options.bodyLimitBytes ?? 1024 * 1024,
      jsonMaxDepth: 400,
      corsOrigins: options.corsOrigins,
      adminRouters: options.adminRouters,
    });
    const server = await listenApi(app, 0, '127.0.0.1', {
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      maxConnections: 4096,
      ...options.serverLimits,
    });
    const harness = new GatewayHarness(
      `http://127.0.0.1:${boundPort(server)}`,
      logs,
      registry,
      redis,
      prefix,
      server,
      auth,
      new Redis(testSettings.TEST_REDIS_URL),
      router,
      backendMonitor,
      watcher,
    );
    return harness;
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
    this.watcher?.stop();
    await this.backendMonitor.stop();
    this.server.closeAllConnections();
    await closeServer(this.server);
    this.auth.close();
    this.redis.disconnect();
    this.reader.disconnect();
    await deleteRedisPrefix(this.prefix);
  }
}
