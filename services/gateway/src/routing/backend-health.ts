import type { Backend } from './model-router.js';

// llama.cpp answers /health with 503 while it loads the model; an OpenAI provider has /v1/models.
const HEALTH_PATHS = { llamacpp: '/health', openai: '/v1/models' } as const;

/** Null when the backend answers its health endpoint with 200. */
export async function backendProblem(backend: Backend, timeoutMs: number): Promise<string | null> {
  const url = new URL(backend.url.pathname.replace(/\/$/, '') + HEALTH_PATHS[backend.kind], backend.url);
  try {
    const res = await fetch(url, {
      headers: backend.apiKey ? { authorization: `Bearer ${backend.apiKey}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.status === 200 ? null : `backend ${backend.name} answered ${res.status}`;
  } catch (err) {
    const cause = (err as Error).cause as Error | undefined;
    return `backend ${backend.name}: ${cause?.message ?? (err as Error).message}`;
  }
}

// Endpoints that need the backend's key: llama-server's /health and /v1/models answer without one.
const KEYED_PATHS = { llamacpp: '/slots', openai: '/v1/models' } as const;

/** Whether the backend refuses the gateway's key (401/403 on an endpoint that needs it). */
export async function keyRefused(backend: Backend, timeoutMs: number): Promise<boolean> {
  const url = new URL(backend.url.pathname.replace(/\/$/, '') + KEYED_PATHS[backend.kind], backend.url);
  try {
    const res = await fetch(url, {
      headers: backend.apiKey ? { authorization: `Bearer ${backend.apiKey}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.status === 401 || res.status === 403;
  } catch {
    return false;
  }
}

/** Null when at least one backend is healthy. */
export async function anyBackendProblem(backends: readonly Backend[], timeoutMs: number): Promise<string | null> {
  const problems = await Promise.all(backends.map((b) => backendProblem(b, timeoutMs)));
  return problems.some((p) => p === null) ? null : problems.join('; ') || 'no backends configured';
}
