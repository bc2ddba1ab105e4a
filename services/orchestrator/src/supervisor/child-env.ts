import type { NodeService } from './stack.processes.js';

// Each supervised process sees only the environment it needs: a secret reaches the one service
// that uses it, and llama-server, Redis and Postgres get none of the stack's settings.

/** Secrets in the supervisor's environment, and the only services that may see them. */
const SECRET_OWNERS: Record<string, readonly NodeService[]> = {
  HF_TOKEN: ['worker'],
  HF_TOKEN_FILE: ['worker'],
  INFERENCE_API_KEY: ['gateway'],
  // Resolved once by the supervisor: the _FILE twin would make the children's loader refuse both.
  INFERENCE_API_KEY_FILE: [],
  AUTH_INTERNAL_TOKEN: ['auth', 'gateway'],
  AUTH_INTERNAL_TOKEN_FILE: [],
};

/**
 * The gateway's model-loading settings (llama-server's router, the memory budget, pinned models):
 * passed through to the gateway as set, and to no other service, which would have no use for them.
 */
const GATEWAY_MODEL_SETTING =
  /^(MODELS_(ROUTER_URL|MEMORY_FILE|MEMORY_BYTES|MAX_LOADED|PINNED)|MODEL_(LOAD_TIMEOUT_MS|IDLE_UNLOAD_SEC|CAPACITY_WAIT_MS))$/;

/** What a program that is not ours needs: where things are, the locale, the GPU runtime's and its own settings. */
const SYSTEM_VARIABLE =
  /^(PATH|HOME|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|LD_LIBRARY_PATH|CUDA_.*|NVIDIA_.*|GGML_.*|LLAMA_ARG_.*)$/;

export function nodeServiceEnv(name: NodeService, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(
      ([key]) =>
        (!(key in SECRET_OWNERS) || SECRET_OWNERS[key]!.includes(name)) &&
        (name === 'gateway' || !GATEWAY_MODEL_SETTING.test(key)),
    ),
  );
}

export function systemEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => SYSTEM_VARIABLE.test(key)));
}

/** The user's MODELS_PINNED with the default model added: it stays loaded, as it did before router mode. */
export function pinnedModels(userList: string | undefined, defaultModel: string | null): string {
  const names = (userList ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  if (defaultModel) names.push(defaultModel);
  return [...new Set(names)].join(',');
}
