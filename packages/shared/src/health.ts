import { Router, type RequestHandler } from 'express';
import { collectDefaultMetrics, Registry } from 'prom-client';

/** What a passing check shows instead of a bare `ok` (`ok (12 keys)`). */
export interface Passed {
  ok: string;
}

/** A readiness check answers null (or `Passed`) when ready, or a short reason when not. */
export type ReadinessCheck = () => Promise<string | null | Passed> | string | null | Passed;

export interface HealthOptions {
  checks: Record<string, ReadinessCheck>;
  /**
   * Problems that leave the service serving (a broken config reload, say): `degraded`, still 200. A
   * name may stand in both: its check decides readiness, this one whether it serves degraded.
   */
  degradedBy?: Record<string, ReadinessCheck>;
  registry: Registry;
  /** Per-check limit, so a hung dependency makes /readyz say so instead of hanging too. */
  checkTimeoutMs?: number;
  /** Where anyone can call it (a published port): /readyz gives its status only, not which check fails. */
  public?: boolean;
  /** Runs before /metrics (e.g. an admin-key check on a published port). */
  metricsGuard?: RequestHandler;
}

export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  // Gauges named like counters fail `promtool check metrics`; nodejs_active_{handles,requests,resources}
  // (by type) carry the same counts.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
  return registry;
}

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<string | null | Passed> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(check), timeout]);
  } catch (err) {
    return (err as Error).message || 'check failed';
  } finally {
    clearTimeout(timer);
  }
}

export type ReadinessStatus = 'ready' | 'degraded' | 'not_ready';

/** Readiness of every check, by name: not ready when a check fails, degraded when only `degradedBy` ones do. */
export async function checkReadiness(
  checks: Record<string, ReadinessCheck>,
  timeoutMs = 2000,
  degradedBy: Record<string, ReadinessCheck> = {},
): Promise<{ ready: boolean; status: ReadinessStatus; checks: Record<string, string> }> {
  const run = async (set: Record<string, ReadinessCheck>) => {
    const names = Object.keys(set);
    const results = await Promise.all(names.map((name) => runCheck(set[name]!, timeoutMs)));
    return new Map(names.map((name, i) => [name, results[i] ?? null]));
  };
  const [failing, degrading] = await Promise.all([run(checks), run(degradedBy)]);
  const problem = (result: string | null | Passed | undefined) => (typeof result === 'string' ? result : null);
  const ready = [...failing.values()].every((result) => problem(result) === null);
  const degraded = [...degrading.values()].some((result) => problem(result) !== null);
  const report: Record<string, string> = {};
  for (const name of new Set([...failing.keys(), ...degrading.keys()])) {
    const passed = [failing.get(name), degrading.get(name)].find((r) => typeof r === 'object' && r !== null);
    report[name] =
      problem(failing.get(name)) ?? problem(degrading.get(name)) ?? (passed as Passed | undefined)?.ok ?? 'ok';
  }
  return { ready, status: !ready ? 'not_ready' : degraded ? 'degraded' : 'ready', checks: report };
}

/** `/healthz` (liveness, never touches a dependency), `/readyz` (JSON per check), `/metrics`. */
export function createHealthRouter(options: HealthOptions): Router {
  const { checks, degradedBy, registry, checkTimeoutMs = 2000 } = options;
  const guards = options.metricsGuard ? [options.metricsGuard] : [];
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const { ready, status, checks: report } = await checkReadiness(checks, checkTimeoutMs, degradedBy);
    res.status(ready ? 200 : 503).json(options.public ? { status } : { status, checks: report });
  });
  router.get('/metrics', ...guards, async (_req, res) => {
    res.set('Content-Type', registry.contentType).send(await registry.metrics());
  });
  return router;
}
