import { commonConfig, env, z, type ConfigOf } from '@gguf-gateway/shared';

const optionalCount = (min: number) => z.coerce.number().int().min(min).optional();

export const orchestratorConfigSchema = {
  ...commonConfig,
  /** `GET /status`, `/readyz`, `/metrics` of the orchestrator itself. */
  PORT: env.port(8099),
  /** Autodetected when unset: /runpod-volume, /workspace, else /data. */
  DATA_DIR: env.path().optional(),
  /** Default `$DATA_DIR/models`. */
  MODELS_DIR: env.path().optional(),
  /** Required by `prepare`; `supervise` starts its own Redis / Postgres under DATA_DIR when unset. */
  REDIS_URL: env.optionalUrl(),
  DATABASE_URL: env.optionalUrl(),
  /** Default `$DATA_DIR/api_keys` (the volume of a RunPod / Vast.ai pod). */
  API_KEYS_FILE: env.path().optional(),
  BACKENDS_FILE: env.path(),
  /** The default model: a GGUF file (absolute, or relative to MODELS_DIR)... */
  MODEL_PATH: env.path().optional(),
  /** ...or a Hugging Face repo and file, pulled by the worker when not on disk yet. */
  MODEL_REPO: z.string().min(1).optional(),
  MODEL_FILE: z.string().min(1).optional(),
  MODEL_REVISION: z.string().min(1).optional(),
  /**
   * More names the default model answers to besides `default` (comma-separated), so that clients
   * whose OpenAI SDK defaults name a model reach it. Empty: `default` only.
   */
  MODEL_ALIASES: z.string().default('gpt-4o-mini'),
  /** How long each gate waits for a dependency before it fails. */
  GATE_TIMEOUT_MS: env.millis(60_000),
  /** How long the model gate waits for a pull to finish. */
  MODEL_PULL_TIMEOUT_MS: env.millis(6 * 60 * 60 * 1000),
  NVIDIA_SMI: z.string().min(1).default('nvidia-smi'),
  /** Where `prepare` writes the llama-server arguments (default `$DATA_DIR/llama-server.args`). */
  LLAMA_ARGS_FILE: env.path().optional(),
  /** User overrides of the detected llama-server settings. */
  LLAMA_N_GPU_LAYERS: optionalCount(0),
  LLAMA_CTX_SIZE: optionalCount(256),
  LLAMA_PARALLEL: optionalCount(1),
  LLAMA_THREADS: optionalCount(1),
  /**
   * supervise: models the gateway keeps loaded (comma-separated names or aliases); the default
   * model is always added. The gateway's other MODELS_* / MODEL_* settings pass through as they are.
   */
  MODELS_PINNED: z.string().optional(),
  /** Passed to auth: the rpm of a key whose line sets none (the seed's MAX_REQUESTS_PER_MINUTE). */
  DEFAULT_KEY_RPM: optionalCount(1),

  // supervise only
  /** RunPod-style `/ping`: 204 while starting, 200 once the gateway is ready. */
  PORT_HEALTH: env.port(8081),
  GATEWAY_PORT: env.port(8080),
  /** The gateway's own PORT_HEALTH inside the container: PORT_HEALTH belongs to the orchestrator. */
  GATEWAY_HEALTH_PORT: env.port(8082),
  AUTH_PORT: env.port(8090),
  METRICS_PORT: env.port(8095),
  WORKER_PORT: env.port(8096),
  INFERENCE_PORT: env.port(8180),
  LOCAL_REDIS_PORT: env.port(6379),
  LOCAL_POSTGRES_PORT: env.port(5432),
  /** Directory of `initdb` and `postgres`; found under /usr/lib/postgresql or via pg_config when unset. */
  POSTGRES_BIN_DIR: env.path().optional(),
  LLAMA_SERVER_BIN: z.string().min(1).default('llama-server'),
  /** Started as root, the supervisor runs every process as this user (Postgres as postgres). */
  RUN_AS_USER: z.string().min(1).optional(),
  /** The llama-server's own key, shared with the gateway; generated per start when unset. */
  INFERENCE_API_KEY: z.string().min(16).optional(),
  /** What the gateway presents to auth's decision endpoints; generated per start when unset. */
  AUTH_INTERNAL_TOKEN: env.secret().optional(),
  /** How long in-flight requests may take to finish after SIGTERM. */
  SHUTDOWN_GRACE_MS: env.millis(30_000),
  /** How long a started process may take to become ready. */
  READY_TIMEOUT_MS: env.millis(120_000),
  /** llama-server's own: loading a large model from a network volume takes far longer. */
  LLAMA_READY_TIMEOUT_MS: env.millis(30 * 60 * 1000),
  RESTART_BACKOFF_MS: env.millis(1000),
  RESTART_BACKOFF_MAX_MS: env.millis(30_000),
};

export const orchestratorFileVariables = ['INFERENCE_API_KEY', 'AUTH_INTERNAL_TOKEN'] as const;

export type OrchestratorConfig = ConfigOf<typeof orchestratorConfigSchema>;
