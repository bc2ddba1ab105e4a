import {
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  createPgPool,
  createRedis,
  handleProcessErrors,
  handleShutdown,
  listen,
  loadConfigOrExit,
  postgresProblem,
  redisProblem,
} from '@gguf-gateway/shared';
import { createApp } from './app.js';
import { workerConfigSchema, workerFileVariables } from './config.js';
import { ModelFilesRepository } from './model-files.repository.js';
import { createPullWorker } from './pull.worker.js';

const config = loadConfigOrExit(workerConfigSchema, { fileVariables: workerFileVariables });
const logger = createLogger({ service: 'worker', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const redis = createRedis(config.REDIS_URL, 'worker');
redis.on('error', (err) => logger.warn({ err }, 'redis error'));
const pool = createPgPool(config.DATABASE_URL, 4);
const registry = createMetricsRegistry('worker');
const files = new ModelFilesRepository(config.MODELS_DIR);
const worker = createPullWorker({ config, logger, pool, registry, redis });

const app = createApp({
  logger,
  registry,
  readiness: {
    redis: () => redisProblem(redis),
    postgres: () => postgresProblem(pool),
    modelsDir: () => files.writableProblem(),
  },
});
const server = await listen(app, config.PORT, config.LISTEN_HOST);
logger.info(
  { port: boundPort(server), modelsDir: files.dir, allowedHosts: config.PULL_ALLOWED_HOSTS },
  'worker listening',
);

handleShutdown(logger, [
  { name: 'http', close: () => closeServer(server) },
  // Not waiting for a pull of many GB: the job's lock lapses and the next worker resumes its partial file.
  { name: 'pull worker', close: () => worker.close(true) },
  { name: 'redis', close: () => redis.quit() },
  { name: 'postgres', close: () => pool.end() },
]);
