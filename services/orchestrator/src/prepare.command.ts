import { boundPort, closeServer, listen } from '@gguf-gateway/shared';
import { createApp } from './app.js';
import { validateBackendsFile, validateKeysFile } from './gates/file-validators.js';
import { GateFailure, GateRunner } from './gates/gate-runner.js';
import { startGates, type PreparedStart } from './gates/start-gates.js';
import { startSettings, type StartContext } from './start-context.js';

/**
 * `prepare` (compose `init`): runs every gate once and exits 0, or non-zero naming the gate that
 * failed. `/status` shows the gates while it runs.
 */
export async function runPrepare(ctx: StartContext): Promise<number> {
  const { config, logger, registry, metrics } = ctx;
  if (!config.DATABASE_URL || !config.REDIS_URL) {
    logger.error('prepare needs DATABASE_URL and REDIS_URL: set both (supervise starts its own when unset)');
    return 1;
  }
  const prepared: PreparedStart = { model: null, gpus: null, llamaArgs: null, defaultModelName: null };
  const gates = new GateRunner(
    startGates(
      startSettings(ctx, config.DATABASE_URL, config.REDIS_URL),
      { logger, validateKeysFile, validateBackendsFile },
      prepared,
    ),
    logger,
    (status) => metrics.gate(status),
  );
  let phase: 'starting' | 'ready' | 'failed' = 'starting';
  const app = createApp({
    logger,
    registry,
    readiness: { gates: () => (phase === 'ready' ? null : `gates ${phase}`) },
    status: () => ({ mode: 'prepare', phase, gates: gates.statuses(), processes: [] }),
  });
  const server = await listen(app, config.PORT);
  logger.info({ port: boundPort(server), dataDir: ctx.dataDir }, 'prepare: running the start gates');

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    await gates.run(undefined, stop.signal);
    phase = 'ready';
    logger.info('prepare: every gate passed');
    return 0;
  } catch (err) {
    phase = 'failed';
    // A gate failure has logged what to fix already.
    if (!(err instanceof GateFailure)) logger.error({ err }, 'prepare failed');
    return 1;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await closeServer(server);
  }
}
