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
import { gatewayConfigSchema } from './config.js';

const config = loadConfigOrExit(gatewayConfigSchema, { fileVariables: ['INFERENCE_API_KEY'] });
const logger = createLogger({ service: 'gateway', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const registry = createMetricsRegistry('gateway');
const app = createApp({ logger, registry, readiness: {} });
const server = await listen(app, config.PORT);
logger.info({ port: boundPort(server) }, 'gateway listening');

handleShutdown(logger, [{ name: 'http', close: () => closeServer(server) }]);
