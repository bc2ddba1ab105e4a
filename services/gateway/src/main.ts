import { boundPort, handleProcessErrors, handleShutdown, loadConfigOrExit, createLogger } from '@gguf-gateway/shared';
import { gatewayConfigSchema } from './config.js';
import { listenApi } from './http/api-server.js';
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
const server = await listenApi(gateway.app, config.PORT, config.LISTEN_HOST, {
  headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT_MS,
  requestTimeoutMs: config.HTTP_REQUEST_TIMEOUT_MS,
  maxConnections: config.HTTP_MAX_CONNECTIONS,
});
await new Promise<void>((resolve) => gateway.pingServer.listen(config.PORT_HEALTH, config.HEALTH_LISTEN_HOST, resolve));
logger.info(
  { port: boundPort(server), healthPort: config.PORT_HEALTH, models: gateway.router.models().map((m) => m.id) },
  'gateway listening',
);
handleShutdown(logger, gateway.closeSteps(server), gateway.shutdownTimeoutMs);
