import type { Backend } from './model-router.js';

function endpoint(backend: Backend, path: string): URL {
  return new URL(backend.url.pathname.replace(/\/$/, '') + path, backend.url);
}

function authHeaders(backend: Backend): Record<string, string> {
  return backend.apiKey ? { authorization: `Bearer ${backend.apiKey}` } : {};
}

/** Null when the backend answers `path` (its kind's health path) with 200. */
export async function backendProblem(backend: Backend, path: string, timeoutMs: number): Promise<string | null> {
  try {
    const res = await fetch(endpoint(backend, path), {
      headers: authHeaders(backend),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.status === 200 ? null : `backend ${backend.name} answered ${res.status}`;
  } catch (err) {
    const cause = (err as Error).cause as Error | undefined;
    return `backend ${backend.name}: ${cause?.message ?? (err as Error).message}`;
  }
}

/** Whether the backend refuses the gateway's key (401/403 on `path`, an endpoint that needs it). */
export async function keyRefused(backend: Backend, path: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(endpoint(backend, path), {
      headers: authHeaders(backend),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.status === 401 || res.status === 403;
  } catch {
    return false;
  }
}
