import { join } from 'node:path';
import { startProcess, type ManagedProcess } from './processes.js';
import { TEST_AUTH_INTERNAL_TOKEN } from './services.js';
import { repoRoot, testSettings } from './settings.js';

// The auth and gateway processes the end-to-end tests start, with the environment every one of them
// shares (test Redis, a key prefix, the internal token, quiet logs); a test adds what it is about.

export interface ServiceProcessOptions {
  port: number;
  /** REDIS_KEY_PREFIX, shared by the auth and gateway of one stack. */
  redisPrefix: string;
  /** Default: the test Redis. */
  redisUrl?: string;
  /** More variables, or ones to override. */
  env?: Record<string, string>;
}

/** `services/<name>/dist/main.js` with the shared environment, then `own`, then `options.env`. */
export function startServiceProcess(
  name: string,
  options: ServiceProcessOptions,
  own: Record<string, string> = {},
): ManagedProcess {
  return startProcess(process.execPath, [join(repoRoot, `services/${name}/dist/main.js`)], {
    env: {
      ...process.env,
      PORT: String(options.port),
      REDIS_URL: options.redisUrl ?? testSettings.TEST_REDIS_URL,
      REDIS_KEY_PREFIX: options.redisPrefix,
      AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
      LOG_LEVEL: 'warn',
      ...own,
      ...options.env,
    },
  });
}

/** `services/auth/dist/main.js` serving the keys in `keysFile`. */
export function startAuthProcess(options: ServiceProcessOptions & { keysFile: string }): ManagedProcess {
  return startServiceProcess('auth', options, { API_KEYS_FILE: options.keysFile });
}

/** `services/gateway/dist/main.js` in front of `backendsFile`, asking auth at `authUrl`; readiness polled every 100 ms. */
export function startGatewayProcess(
  options: ServiceProcessOptions & { healthPort: number; authUrl: string; backendsFile: string },
): ManagedProcess {
  return startServiceProcess('gateway', options, {
    PORT_HEALTH: String(options.healthPort),
    AUTH_URL: options.authUrl,
    BACKENDS_FILE: options.backendsFile,
    READINESS_POLL_MS: '100',
  });
}
