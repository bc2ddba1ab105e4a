import type { Backend } from './backend-state.js';

// Reads how busy a backend is. llama.cpp's /slots needs the backend's key when it has one; a slots
// endpoint that is switched off (--no-slots: 501) is not a failure, the backend is just opaque.

export interface SlotLoad {
  total: number | null;
  busy: number;
}

function authHeaders(backend: Backend): Record<string, string> {
  return backend.apiKey ? { authorization: `Bearer ${backend.apiKey}` } : {};
}

function endpoint(backend: Backend, path: string): URL {
  return new URL(backend.url.pathname.replace(/\/$/, '') + path, backend.url);
}

/** The busy and total slots of a llama.cpp server, or the problem (a string) when it did not answer. */
export async function readBusySlots(backend: Backend, timeoutMs: number): Promise<SlotLoad | string> {
  try {
    const res = await fetch(endpoint(backend, '/slots'), {
      headers: authHeaders(backend),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.status === 501 || res.status === 404) {
      await res.body?.cancel();
      return { total: null, busy: 0 };
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      return `backend ${backend.name} answered ${res.status} on /slots`;
    }
    const slots = (await res.json()) as { is_processing?: boolean }[];
    if (!Array.isArray(slots)) return { total: null, busy: 0 };
    return { total: slots.length, busy: slots.filter((s) => s.is_processing === true).length };
  } catch (err) {
    const cause = (err as Error).cause as Error | undefined;
    return `backend ${backend.name}: ${cause?.message ?? (err as Error).message}`;
  }
}

interface UtilizationEntry {
  name?: unknown;
  chute_id?: unknown;
  utilization_current?: unknown;
  utilization?: unknown;
}

/**
 * A provider's utilisation (0..1) from its utilisation API. chutes.ai's `/chutes/utilization` lists
 * every chute: the entry whose `name` (or `chute_id`) is the backend's model is used. A plain number
 * or `{utilization}` is accepted too, for providers that report one figure.
 */
export async function readUtilization(backend: Backend, timeoutMs: number): Promise<number | null> {
  const res = await fetch(backend.utilizationUrl!, {
    headers: authHeaders(backend),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`utilisation API answered ${res.status}`);
  }
  const body = (await res.json()) as unknown;
  const figure = (entry: UtilizationEntry): number | null => {
    const value = entry.utilization_current ?? entry.utilization;
    return typeof value === 'number' && Number.isFinite(value) ? Math.min(Math.max(value, 0), 1) : null;
  };
  if (typeof body === 'number') return figure({ utilization: body });
  if (Array.isArray(body)) {
    const entry = (body as UtilizationEntry[]).find((e) => e.name === backend.model || e.chute_id === backend.model);
    return entry ? figure(entry) : null;
  }
  return typeof body === 'object' && body !== null ? figure(body as UtilizationEntry) : null;
}
