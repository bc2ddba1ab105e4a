import type { BackendKind } from '@gguf-gateway/shared';
import type { Backend } from './backend-state.js';
import { readBusySlots, type SlotLoad } from './backend-load.repository.js';

// What the gateway knows about each kind of backend, as data: the monitor, the proxy, the key
// resolution and the metering read this table instead of branching on the kind, so that another
// kind (vLLM, say) is one more entry here and one more name in the backends file's `kind`.

export type LoadReader = (backend: Backend, timeoutMs: number) => Promise<SlotLoad | string>;

export interface BackendKindSpec {
  /**
   * How the monitor asks a backend whether it serves (a cooled-down one too, to bring it back).
   * `load`: its load reader answers, and a failed read counts like a failed request. `path`: it
   * answers 200 there; a healthy backend that does not stops counting for readiness only, since a
   * provider's answers to requests, not to its model list, decide whether requests go to it.
   */
  health: { load: LoadReader } | { path: string };
  /** An endpoint that needs the backend's key: asked after a request saw 401/403. */
  keyedPath: string;
  /** Sent INFERENCE_API_KEY when the backends file names no apiKeyEnv (local sidecars share it). */
  usesInferenceKey: boolean;
  /** What a 502 tells the operator to check when the backend refuses the gateway's key. */
  keyHint: (backend: Backend) => string;
  /** Each of a request's `n` outputs reports its own usage (llama.cpp runs them as separate tasks). */
  usagePerOutput: boolean;
}

export const BACKEND_KINDS: Record<BackendKind, BackendKindSpec> = {
  llamacpp: {
    // llama-server answers 503 on everything but /v1/models while it loads the model, /slots included.
    health: { load: readBusySlots },
    keyedPath: '/slots',
    usesInferenceKey: true,
    keyHint: () => 'The model backend refused the gateway; check INFERENCE_API_KEY.',
    usagePerOutput: true,
  },
  openai: {
    health: { path: '/v1/models' },
    keyedPath: '/v1/models',
    usesInferenceKey: false,
    keyHint: (backend) =>
      `The provider behind backend '${backend.name}' refused the gateway's API key; check ${backend.apiKeyEnv ?? 'its apiKeyEnv'}.`,
    usagePerOutput: false,
  },
};

export function kindOf(backend: Pick<Backend, 'kind'>): BackendKindSpec {
  return BACKEND_KINDS[backend.kind];
}
