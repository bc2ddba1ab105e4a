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

/** Null when at least one backend is healthy. */
export async function anyBackendProblem(backends: readonly Backend[], timeoutMs: number): Promise<string | null> {
  const problems = await Promise.all(backends.map((b) => backendProblem(b, timeoutMs)));
  return problems.some((p) => p === null) ? null : problems.join('; ') || 'no backends configured';
}
