import {
  boundPort,
  createLogger,
  handleProcessErrors,
  handleShutdown,
  listen,
  loadConfigOrExit,
} from '@gguf-gateway/shared';
import { metricsConfigSchema } from './config.js';
import { buildMetrics } from './wiring.js';

const config = loadConfigOrExit(metricsConfigSchema);
const logger = createLogger({ service: 'metrics', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const metrics = await buildMetrics(config, { logger });
const server = await listen(metrics.app, config.PORT, config.LISTEN_HOST);
logger.info({ port: boundPort(server) }, 'metrics listening');
handleShutdown(logger, metrics.closeSteps(server));
await metrics.start();
