import { commonConfig, env, z, type ConfigOf } from '@gguf-gateway/shared';

export const authConfigSchema = {
  ...commonConfig,
  PORT: env.port(8090),
  LISTEN_HOST: env.host(),
  REDIS_URL: env.url(),
  API_KEYS_FILE: env.path(),
  /** USD per million tokens per model (YAML/JSON), for budget_usd_day / budget_usd_month. */
  PRICES_FILE: env.path().optional(),
  /** How often the keys file is re-read; a removed key stops working within this (plus one request). */
  KEYS_FILE_POLL_MS: env.millis(250),
  /** How long the last good keys keep serving while the keys file is missing, unreadable or has no
   *  valid line (a write caught halfway, a remount); after that no key is served until it is fixed. */
  KEYS_FILE_GRACE_MS: env.int(30_000, 0),
  /** A concurrency slot not settled or renewed within this is released (a crashed gateway). */
  LEASE_TTL_SEC: env.int(120, 3),
  /** Failed key attempts (unknown or malformed key) allowed per client IP per window; past that,
   *  every request from the IP is refused until the window ends (brute-force guard). */
  FAILED_AUTH_MAX: env.int(20, 1),
  FAILED_AUTH_WINDOW_SEC: env.int(300, 1),
  /** How long a gateway may reuse an allowed decision of an rpm-only key (0: ask auth every time).
   *  A removed key stops working within KEYS_FILE_POLL_MS plus this. */
  GRANT_TTL_MS: env.int(250, 0),
  /** The secret the gateway presents on /v1/authorize, /v1/settle, /v1/renew and /v1/keys/reload
   *  (or AUTH_INTERNAL_TOKEN_FILE); without it those endpoints answer 401. */
  AUTH_INTERNAL_TOKEN: env.secret(),
  /** Requests per minute of a key whose line sets no rpm (the seed's MAX_REQUESTS_PER_MINUTE); none when unset. */
  DEFAULT_KEY_RPM: z.coerce.number().int().min(1).optional(),
};

export const authFileVariables = ['AUTH_INTERNAL_TOKEN'] as const;

export type AuthConfig = ConfigOf<typeof authConfigSchema>;
