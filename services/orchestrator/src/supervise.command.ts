import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { boundPort, closeServer, listen } from '@gguf-gateway/shared';
import { createApp, createPingApp, type Phase } from './app.js';
import { validateBackendsFile, validateKeysFile } from './gates/file-validators.js';
import { GateFailure, GateRunner } from './gates/gate-runner.js';
import { DEPENDENCY_GATES, MODEL_GATES, startGates, type PreparedStart } from './gates/start-gates.js';
import {
  localPostgresSpec,
  localPostgresUrl,
  localRedisSpec,
  localRedisUrl,
  postgresBinDir,
} from './supervisor/local-stores.js';
import { ProcessSupervisor } from './supervisor/process.supervisor.js';
import { handOver, resolveRunAs } from './supervisor/run-as.js';
import { pinnedModels } from './supervisor/child-env.js';
import { llamaServerSpec, nodeServiceSpec } from './supervisor/stack.processes.js';
import { startSettings, type StartContext } from './start-context.js';

/**
 * `supervise` (the all-in-one entrypoint): local Redis/Postgres when no URL is given, the gates,
 * then auth, metrics, worker, llama-server and gateway, each once the previous one is ready.
 * SIGTERM drains the gateway first and stops the rest in reverse order. Resolves to the exit code.
 */
export async function runSupervise(ctx: StartContext): Promise<number> {
  const { config: c, logger, registry, metrics } = ctx;
  let phase: Phase = 'starting';
  const supervisor = new ProcessSupervisor(
    logger,
    {
      readyTimeoutMs: c.READY_TIMEOUT_MS,
      backoffMs: c.RESTART_BACKOFF_MS,
      backoffMaxMs: c.RESTART_BACKOFF_MAX_MS,
    },
    { onStatus: (s) => metrics.process(s), onRestart: (name) => metrics.restart(name) },
  );
  // A crash (handleProcessErrors exits) must not leave Redis, Postgres or a service holding its port.
  const killChildren = () => supervisor.killAllNow();
  process.on('exit', killChildren);
  const databaseUrl = c.DATABASE_URL ?? localPostgresUrl(c.LOCAL_POSTGRES_PORT);
  const redisUrl = c.REDIS_URL ?? localRedisUrl(c.LOCAL_REDIS_PORT);
  const prepared: PreparedStart = { model: null, gpus: null, llamaArgs: null, defaultModelName: null };
  const gates = new GateRunner(
    startGates(
      startSettings(ctx, databaseUrl, redisUrl),
      { logger, validateKeysFile, validateBackendsFile, modelRequired: true },
      prepared,
    ),
    logger,
    (status) => metrics.gate(status),
  );

  const statusServer = await listen(
    createApp({
      logger,
      registry,
      readiness: { stack: () => (phase === 'ready' ? null : `stack ${phase}`) },
      status: () => ({ mode: 'supervise', phase, gates: gates.statuses(), processes: supervisor.statuses() }),
    }),
    c.PORT,
    // The status of every gate and process is for the machine itself: only /ping is public.
    '127.0.0.1',
  );
  const pingServer = await listen(
    createPingApp(
      () => phase,
      () => supervisor.statuses().every((s) => s.state === 'ready'),
    ),
    c.PORT_HEALTH,
  );
  logger.info(
    { statusPort: boundPort(statusServer), pingPort: boundPort(pingServer), dataDir: ctx.dataDir },
    'supervise: starting the stack',
  );

  const stopRequested = new AbortController();
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopRequested.signal.aborted) return;
      logger.info(
        { signal, graceMs: c.SHUTDOWN_GRACE_MS },
        'stopping: draining the gateway, then the rest in reverse order',
      );
      phase = 'stopping';
      stopRequested.abort();
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });

  let exitCode = 0;
  try {
    await Promise.race([startStack(), stopped]);
    if (!stopRequested.signal.aborted) await stopped;
  } catch (err) {
    if (!stopRequested.signal.aborted) {
      phase = 'failed';
      exitCode = 1;
      if (!(err instanceof GateFailure)) logger.error({ err }, 'supervise: the stack could not start');
    }
  }
  phase = phase === 'failed' ? 'failed' : 'stopping';
  await supervisor.stopAll();
  process.off('exit', killChildren);
  await Promise.all([closeServer(pingServer), closeServer(statusServer)]);
  logger.info({ exitCode }, 'supervise: stopped');
  return exitCode;

  async function startStack(): Promise<void> {
    // As root, every process below runs as RUN_AS_USER (Postgres as postgres), owning what it writes.
    const runAs = resolveRunAs(c.RUN_AS_USER);
    // Usage events wait here while Redis cannot take them; kept across restarts, replayed once it can.
    const usageSpoolDir = join(ctx.dataDir, 'usage-spool');
    if (runAs) {
      mkdirSync(ctx.modelsDir, { recursive: true });
      // The spool may hold events a run before this one (as root) could not deliver.
      handOver(runAs, [ctx.dataDir, ctx.keysFile], [ctx.modelsDir, usageSpoolDir]);
      logger.info({ user: runAs.name, uid: runAs.uid }, 'supervise: the services run as a non-root user');
    }
    if (!c.REDIS_URL) await supervisor.start(localRedisSpec(ctx.dataDir, c.LOCAL_REDIS_PORT, runAs));
    if (!c.DATABASE_URL) {
      await supervisor.start(localPostgresSpec(ctx.dataDir, c.LOCAL_POSTGRES_PORT, postgresBinDir(c.POSTGRES_BIN_DIR)));
    }
    await gates.run(DEPENDENCY_GATES, stopRequested.signal);

    const inferenceKey = c.INFERENCE_API_KEY ?? randomBytes(24).toString('base64url');
    const authToken = c.AUTH_INTERNAL_TOKEN ?? randomBytes(24).toString('base64url');
    // Each child gets only its own share of this (child-env.ts): HF_TOKEN the worker only.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      REDIS_URL: redisUrl,
      DATABASE_URL: databaseUrl,
      DATA_DIR: ctx.dataDir,
      MODELS_DIR: ctx.modelsDir,
      API_KEYS_FILE: ctx.keysFile,
      BACKENDS_FILE: c.BACKENDS_FILE,
      AUTH_URL: `http://127.0.0.1:${c.AUTH_PORT}`,
      INFERENCE_API_KEY: inferenceKey,
      AUTH_INTERNAL_TOKEN: authToken,
      PORT_HEALTH: String(c.GATEWAY_HEALTH_PORT),
      ...(c.DEFAULT_KEY_RPM === undefined ? {} : { DEFAULT_KEY_RPM: String(c.DEFAULT_KEY_RPM) }),
    };
    const serviceGrace = 10_000;
    // Only the gateway's API and the orchestrator's /ping are for the outside: the rest listens on loopback.
    const internalEnv = { ...env, LISTEN_HOST: '127.0.0.1' };
    await supervisor.start(nodeServiceSpec('auth', c.AUTH_PORT, internalEnv, serviceGrace, runAs));
    await supervisor.start(nodeServiceSpec('metrics', c.METRICS_PORT, internalEnv, serviceGrace, runAs));
    await supervisor.start(nodeServiceSpec('worker', c.WORKER_PORT, internalEnv, serviceGrace, runAs));
    // The worker is up: it can pull the default model now.
    await gates.run(MODEL_GATES, stopRequested.signal);
    if (prepared.llamaArgs) {
      await supervisor.start(
        llamaServerSpec(
          c.LLAMA_SERVER_BIN,
          prepared.llamaArgs,
          c.INFERENCE_PORT,
          inferenceKey,
          env,
          c.LLAMA_READY_TIMEOUT_MS,
          join(ctx.dataDir, 'llama-cache'),
          runAs,
        ),
      );
    }
    // The gateway cuts streams still running after SHUTDOWN_GRACE_MS, then flushes usage: SIGKILL only after that.
    const gatewayEnv = {
      ...env,
      // llama-server's router: the gateway lists, loads and unloads the models through it.
      MODELS_ROUTER_URL: `http://127.0.0.1:${c.INFERENCE_PORT}`,
      MODELS_MEMORY_FILE: ctx.memoryBudgetFile,
      MODELS_PINNED: pinnedModels(c.MODELS_PINNED, prepared.defaultModelName),
      SHUTDOWN_GRACE_MS: String(c.SHUTDOWN_GRACE_MS),
      LISTEN_HOST: '0.0.0.0',
      HEALTH_LISTEN_HOST: '127.0.0.1',
      USAGE_SPOOL_DIR: usageSpoolDir,
    };
    await supervisor.start(nodeServiceSpec('gateway', c.GATEWAY_PORT, gatewayEnv, c.SHUTDOWN_GRACE_MS + 15_000, runAs));
    if (stopRequested.signal.aborted) return;
    phase = 'ready';
    logger.info({ port: c.GATEWAY_PORT }, 'supervise: the stack is ready');
  }
}
