import {
  boundPort,
  createLogger,
  handleProcessErrors,
  handleShutdown,
  listen,
  loadConfigOrExit,
} from '@gguf-gateway/shared';
import { workerConfigSchema, workerFileVariables } from './config.js';
import { buildWorker } from './wiring.js';

const config = loadConfigOrExit(workerConfigSchema, { fileVariables: workerFileVariables });
const logger = createLogger({ service: 'worker', level: config.LOG_LEVEL });
handleProcessErrors(logger);

const worker = buildWorker(config, { logger });
const server = await listen(worker.app, config.PORT, config.LISTEN_HOST);
logger.info(
  { port: boundPort(server), modelsDir: worker.files.dir, allowedHosts: config.PULL_ALLOWED_HOSTS },
  'worker listening',
);
handleShutdown(logger, worker.closeSteps(server));
