import {
  boundPort,
  handleProcessErrors,
  handleShutdown,
  listen,
  loadConfigOrExit,
  createLogger,
} from '@gguf-gateway/shared';
import { gatewayConfigSchema } from './config.js';
import { buildGateway, type Gateway } from './wiring.js';

const config = loadConfigOrExit(gatewayConfigSchema, { fileVariables: ['INFERENCE_API_KEY', 'AUTH_INTERNAL_TOKEN'] });
const logger = createLogger({ service: 'gateway', level: config.LOG_LEVEL });
handleProcessErrors(logger);

let gateway: Gateway;
try {
  gateway = await buildGateway(config, { logger });
} catch (err) {
  logger.fatal(`BACKENDS_FILE ${config.BACKENDS_FILE}: ${(err as Error).message}`);
  process.exit(1);
}
gateway.start();
process.on('SIGHUP', () => void gateway.backendsWatcher.reload());
const server = await listen(gateway.app, config.PORT);
await new Promise<void>((resolve) => gateway.pingServer.listen(config.PORT_HEALTH, '0.0.0.0', resolve));
logger.info(
  { port: boundPort(server), healthPort: config.PORT_HEALTH, models: gateway.router.models().map((m) => m.id) },
  'gateway listening',
);
handleShutdown(logger, gateway.closeSteps(server), gateway.shutdownTimeoutMs);
