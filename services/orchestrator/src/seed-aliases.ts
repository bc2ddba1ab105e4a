import { ConfigError } from '@gguf-gateway/shared';

// The variables of the seed project (llama-gguf-inference), read as ours, so that its users' env
// files and RunPod / Vast.ai templates keep working in the all-in-one image. Ours win when both
// are set. The README's migration section lists them.

type Env = Record<string, string | undefined>;

export interface SeedAlias {
  seed: string;
  ours: string;
}

export const SEED_ALIASES: readonly SeedAlias[] = [
  // A file name in MODELS_DIR: MODEL_PATH takes one relative to MODELS_DIR.
  { seed: 'MODEL_NAME', ours: 'MODEL_PATH' },
  { seed: 'NGL', ours: 'LLAMA_N_GPU_LAYERS' },
  { seed: 'CTX', ours: 'LLAMA_CTX_SIZE' },
  { seed: 'AUTH_KEYS_FILE', ours: 'API_KEYS_FILE' },
  { seed: 'MAX_REQUESTS_PER_MINUTE', ours: 'DEFAULT_KEY_RPM' },
];

/**
 * The environment with the seed's names read as ours. In `supervise` (the all-in-one image) the
 * seed's PORT is the API port, as it was there: it becomes GATEWAY_PORT, and the orchestrator's own
 * status port keeps its default. AUTH_ENABLED=false is refused: this stack always checks keys.
 */
export function withSeedAliases(env: Env, mode: string): Env {
  const out: Env = { ...env };
  for (const { seed, ours } of SEED_ALIASES) {
    if (out[ours] === undefined && out[seed] !== undefined && out[seed] !== '') out[ours] = out[seed];
  }
  if (mode === 'supervise' && out.PORT !== undefined && out.GATEWAY_PORT === undefined) {
    out.GATEWAY_PORT = out.PORT;
    delete out.PORT;
  }
  const enabled = out.AUTH_ENABLED?.trim().toLowerCase();
  if (enabled !== undefined && enabled !== '' && !['true', '1', 'yes'].includes(enabled)) {
    throw new ConfigError([
      'AUTH_ENABLED: this stack always requires an API key (there is no open mode); remove AUTH_ENABLED and put keys in API_KEYS_FILE (`gguf-gateway keys add`)',
    ]);
  }
  return out;
}
