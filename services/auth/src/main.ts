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
  loadPriceTable,
} from '@gguf-gateway/shared';
import { authConfigSchema, authFileVariables } from './config.js';
import { buildAuth, REDIS_COMMAND_TIMEOUT_MS } from './wiring.js';

const config = loadConfigOrExit(authConfigSchema, { fileVariables: authFileVariables });
const logger = createLogger({ service: 'auth', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const redis = createRedis(config.REDIS_URL, 'request-path', { commandTimeout: REDIS_COMMAND_TIMEOUT_MS });
redis.on('error', (err) => logger.warn({ err }, 'redis error'));
const auth = await buildAuth({
  logger,
  registry: createMetricsRegistry('auth'),
  redis,
  redisKeyPrefix: config.REDIS_KEY_PREFIX,
  keysFile: config.API_KEYS_FILE,
  keysFilePollMs: config.KEYS_FILE_POLL_MS,
  keysFileGraceMs: config.KEYS_FILE_GRACE_MS,
  prices: await loadPriceTable(config.PRICES_FILE),
  leaseTtlSec: config.LEASE_TTL_SEC,
  failedAuthMax: config.FAILED_AUTH_MAX,
  failedAuthWindowSec: config.FAILED_AUTH_WINDOW_SEC,
  grantTtlMs: config.GRANT_TTL_MS,
  internalToken: config.AUTH_INTERNAL_TOKEN,
  defaultKeyRpm: config.DEFAULT_KEY_RPM,
});
process.on('SIGHUP', () => {
  logger.info('SIGHUP: reloading the keys file');
  void auth.keys.reload();
});
const server = await listen(auth.app, config.PORT, config.LISTEN_HOST);
logger.info({ port: boundPort(server), keys: auth.keys.count }, 'auth listening');

handleShutdown(logger, [
  { name: 'keys watcher', close: () => auth.stop() },
  { name: 'http', close: () => closeServer(server) },
  { name: 'redis', close: () => redis.quit() },
]);
