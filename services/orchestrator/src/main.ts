import { createLogger, createMetricsRegistry, handleProcessErrors, loadConfigOrExit } from '@gguf-gateway/shared';
import { orchestratorConfigSchema, orchestratorFileVariables } from './config.js';
import { runPrepare } from './prepare.command.js';
import { resolveDirs } from './start-context.js';
import { createStatusMetrics } from './status.metrics.js';
import { runSupervise } from './supervise.command.js';
import { withSeedAliases } from './seed-aliases.js';

const COMMANDS = { prepare: runPrepare, supervise: runSupervise } as const;

const mode = process.argv[2] ?? '';
if (!(mode in COMMANDS)) {
  process.stderr.write(`usage: orchestrator prepare|supervise (got "${mode}")\n`);
  process.exit(2);
}

const config = loadConfigOrExit(orchestratorConfigSchema, { fileVariables: orchestratorFileVariables }, () =>
  withSeedAliases(process.env, mode),
);
const logger = createLogger({ service: 'orchestrator', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const registry = createMetricsRegistry('orchestrator');
const exitCode = await COMMANDS[mode as keyof typeof COMMANDS]({
  config,
  logger,
  registry,
  metrics: createStatusMetrics(registry),
  ...resolveDirs(config),
});
process.exit(exitCode);
