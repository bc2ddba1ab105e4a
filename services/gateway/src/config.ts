import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commonConfig, env, loadConfig, z, type ConfigOf } from '@gguf-gateway/shared';

export const gatewayConfigSchema = {
  ...commonConfig,
  PORT: env.port(8080),
  LISTEN_HOST: env.host(),
  PORT_HEALTH: env.port(8081),
  REDIS_URL: env.url(),
  AUTH_URL: env.url(),
  /** The secret auth requires on its decision endpoints (or AUTH_INTERNAL_TOKEN_FILE). */
  AUTH_INTERNAL_TOKEN: env.secret(),
  BACKENDS_FILE: env.path(),
  /** Postgres with the usage tables, for GET /admin/v1/usage; without it that route answers 503. */
  DATABASE_URL: env.optionalUrl(),
  /** Where usage events wait while Redis cannot take them (replayed when it can): keep it on a volume. */
  USAGE_SPOOL_DIR: z.string().min(1).default(join(tmpdir(), 'gguf-gateway-usage-spool')),
  /** The llama.cpp sidecars' own key; the client's Authorization header never reaches a backend. */
  INFERENCE_API_KEY: z.string().min(16).optional(),
  /** Largest accepted request body, in bytes. */
  BODY_LIMIT_BYTES: env.int(4 * 1024 * 1024, 1024),
  /** Deepest nesting of arrays and objects in a JSON body (checked before it is parsed). */
  JSON_MAX_DEPTH: env.int(400, 1),
  /** Until a request's headers have arrived. */
  HTTP_HEADERS_TIMEOUT_MS: env.millis(10_000),
  /** Until a request's whole body has arrived (a slow upload); the response is not limited by it. */
  HTTP_REQUEST_TIMEOUT_MS: env.millis(60_000),
  /** Open client connections at most; past it new connections are closed at once. */
  HTTP_MAX_CONNECTIONS: env.int(4096, 1),
  /** Where PORT_HEALTH listens (/ping, /readyz details, /metrics); supervise sets 127.0.0.1. */
  HEALTH_LISTEN_HOST: env.host(),
  /** Browser origins allowed to call the API (comma-separated); empty allows none. */
  CORS_ORIGINS: env.list(),
  /** Trust X-Forwarded-For from this many proxy hops when naming the client's IP (0: the socket's). */
  TRUST_PROXY_HOPS: env.int(0),
  UPSTREAM_CONNECT_TIMEOUT_MS: env.millis(5_000),
  /** Until the backend's response headers: prompt processing of a long prompt counts here. */
  UPSTREAM_FIRST_BYTE_TIMEOUT_MS: env.millis(120_000),
  /** Between two chunks of a response; there is no total cap on a healthy stream. */
  UPSTREAM_IDLE_TIMEOUT_MS: env.millis(60_000),
  /** An idle connection to a backend is closed after this: below llama-server's own 5 s keep-alive. */
  UPSTREAM_KEEPALIVE_IDLE_MS: env.millis(2_000),
  /** A client that takes no bytes of its answer for this long is cut and the backend request aborted. */
  CLIENT_STALL_MS: env.millis(30_000),
  AUTH_TIMEOUT_MS: env.millis(5_000),
  /** How often the background poll checks auth and the backends for readiness and /ping. */
  READINESS_POLL_MS: env.millis(2_000),
  /** On SIGTERM, how long requests in flight (streams) may run before they are cut. */
  SHUTDOWN_GRACE_MS: env.millis(30_000),
  /** Backends one request may try before it fails (the first attempt included). */
  ROUTING_MAX_ATTEMPTS: env.int(3, 1),
  /** Consecutive failures that cool a backend down (circuit breaker). */
  ROUTING_FAILURE_THRESHOLD: env.int(3, 1),
  /** Between two probes of a cooled-down backend; the first comes at the next poll (half-open). */
  ROUTING_COOLDOWN_MS: env.millis(500),
  /** How long a request may wait for a backend of its model that is restarting, before 503. */
  ROUTING_WAIT_MS: env.int(15_000),
  /** How often backends are polled: llama.cpp /slots, utilisation APIs, probes of cooled-down ones. */
  BACKEND_POLL_MS: env.millis(1_000),
  /** How often BACKENDS_FILE is checked for changes (SIGHUP reloads at once). */
  BACKENDS_FILE_POLL_MS: env.millis(2_000),
  /** Models on demand: every GGUF here is a model, named by its file (needs MODELS_ROUTER_URL). */
  MODELS_DIR: z.string().min(1).optional(),
  /** llama-server in router mode (--models-dir, --no-models-autoload); without it only the backends file is served. */
  MODELS_ROUTER_URL: env.optionalUrl(),
  /** At most this many models loaded at once; 0: as many as fit in the memory budget. */
  MODELS_MAX_LOADED: env.int(0),
  /** The memory budget for loaded models, in bytes (wins over MODELS_MEMORY_FILE). */
  MODELS_MEMORY_BYTES: z.coerce.number().int().positive().optional(),
  /** The orchestrator's memory-budget.json ({device, bytes, gpus}); without either: the machine's RAM. */
  MODELS_MEMORY_FILE: z.string().min(1).optional(),
  /** How long a request waits for a model to load (large models load slowly). */
  MODEL_LOAD_TIMEOUT_MS: env.millis(600_000),
  /** How long a request waits for room to load its model while every loaded one is busy, before 503. */
  MODEL_CAPACITY_WAIT_MS: env.millis(60_000),
  /** Unload a model nobody used for this long; 0: never. */
  MODEL_IDLE_UNLOAD_SEC: env.int(0),
  /** Models (names or aliases) loaded at start and never unloaded. */
  MODELS_PINNED: env.list(),
};

export type GatewayConfig = ConfigOf<typeof gatewayConfigSchema>;

/** A remote backend's key from the variable the backends file names (or its _FILE form); throws when unset. */
export function readBackendKey(name: string): string {
  try {
    return (
      loadConfig({ [name]: z.string().min(1) }, process.env, { fileVariables: [name] }) as Record<string, string>
    )[name]!;
  } catch {
    throw new Error(`${name} (or ${name}_FILE) is not set`);
  }
}
