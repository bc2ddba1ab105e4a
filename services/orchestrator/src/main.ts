import {
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  handleProcessErrors,
  handleShutdown,
  listen,
  loadConfigOrExit,
} from '@gguf-gateway/shared';
import { createApp } from './app.js';
import { orchestratorConfigSchema } from './config.js';

const config = loadConfigOrExit(orchestratorConfigSchema);
const logger = createLogger({ service: 'orchestrator', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const registry = createMetricsRegistry('orchestrator');
const app = createApp({ logger, registry, readiness: {} });
const server = await listen(app, config.PORT);
logger.info({ port: boundPort(server) }, 'orchestrator listening');

handleShutdown(logger, [{ name: 'http', close: () => closeServer(server) }]);
