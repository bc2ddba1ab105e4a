import {
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  createRedis,
  handleProcessErrors,
  handleShutdown,
  listen,
  loadConfigOrExit,
  redisProblem,
} from '@gguf-gateway/shared';
import { createApp } from './app.js';
import { authConfigSchema } from './config.js';

const config = loadConfigOrExit(authConfigSchema);
const logger = createLogger({ service: 'auth', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const redis = createRedis(config.REDIS_URL, 'request-path');
redis.on('error', (err) => logger.warn({ err }, 'redis error'));
const registry = createMetricsRegistry('auth');
const app = createApp({ logger, registry, readiness: { redis: () => redisProblem(redis) } });
const server = await listen(app, config.PORT);
logger.info({ port: boundPort(server) }, 'auth listening');

handleShutdown(logger, [
  { name: 'http', close: () => closeServer(server) },
  { name: 'redis', close: () => redis.quit() },
]);
