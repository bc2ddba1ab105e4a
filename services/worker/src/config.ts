import { commonConfig, env, z, type ConfigOf } from '@gguf-gateway/shared';

/** Hugging Face's hub and the hosts its downloads redirect to (LFS CDN, Xet bridge). */
export const HUGGING_FACE_HOSTS = 'huggingface.co,*.huggingface.co,hf.co,*.hf.co';

export const workerConfigSchema = {
  ...commonConfig,
  PORT: env.port(8096),
  LISTEN_HOST: env.host(),
  REDIS_URL: env.url(),
  DATABASE_URL: env.url(),
  MODELS_DIR: env.path(),
  HF_TOKEN: z.string().optional(),
  HF_ENDPOINT: z.string().url().default('https://huggingface.co'),
  /** host, host:port or *.domain; a download may only come from (or redirect to) these. */
  PULL_ALLOWED_HOSTS: env.list().transform((hosts) => (hosts.length > 0 ? hosts : HUGGING_FACE_HOSTS.split(','))),
  /**
   * `http:` downloads (a `{url}` source, a redirect) are refused unless this is set: plain HTTP lets
   * anyone on the path swap the model. HF_ENDPOINT itself is the operator's own choice.
   */
  PULL_ALLOW_HTTP: env.bool(false),
  /** Concurrent ranged connections for one file (a CDN caps what one connection gets). */
  PULL_CONNECTIONS: env.int(8, 1),
  /** Files above this size are fetched in parallel ranges; smaller ones over one connection. */
  PULL_PARALLEL_MIN_BYTES: env.int(100 * 1024 ** 2),
  /** Asking the hub where a file is gives up after this long (and is retried as a network fault). */
  PULL_RESOLVE_TIMEOUT_MS: env.millis(30_000),
  /** No byte for this long: the connection is dropped and the download resumes. */
  PULL_STALL_TIMEOUT_MS: env.millis(30_000),
  /** Free space kept on the models volume beyond what a pull still needs. */
  PULL_FREE_SPACE_MARGIN_BYTES: env.int(1024 ** 3),
  PULL_CONCURRENCY: env.int(1, 1),
  /** How soon a pull held by a crashed worker is handed to another (BullMQ lock duration). */
  PULL_LOCK_MS: env.millis(30_000),
  PULL_PROGRESS_INTERVAL_MS: env.millis(250),
};

export type WorkerConfig = ConfigOf<typeof workerConfigSchema>;

export const workerFileVariables = ['HF_TOKEN'] as const;
