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

/** What a program that is not ours needs: where things are, the locale, the GPU runtime's and its own settings. */
const SYSTEM_VARIABLE =
  /^(PATH|HOME|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|LD_LIBRARY_PATH|CUDA_.*|NVIDIA_.*|GGML_.*|LLAMA_ARG_.*)$/;

export function nodeServiceEnv(name: NodeService, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([key]) => !(key in SECRET_OWNERS) || SECRET_OWNERS[key]!.includes(name)),
  );
}

export function systemEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => SYSTEM_VARIABLE.test(key)));
}
