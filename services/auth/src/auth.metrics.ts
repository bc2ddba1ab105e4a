import { Counter, Gauge, type Registry } from 'prom-client';

export type DecisionResult =
  | 'allowed'
  | 'invalid_api_key'
  | 'model_not_allowed'
  | 'insufficient_scope'
  | 'rate_limit_exceeded'
  | 'quota_exceeded'
  | 'budget_exceeded';

export interface AuthMetrics {
  decision(result: DecisionResult): void;
  keysLoaded(count: number): void;
}

/** auth_decisions_total, auth_keys_loaded and auth_redis_degraded (1 while the insurance limiter serves). */
export function createAuthMetrics(registry: Registry, isRedisDegraded: () => boolean): AuthMetrics {
  const decisions = new Counter({
    name: 'auth_decisions_total',
    help: 'Authorize decisions by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  const keys = new Gauge({ name: 'auth_keys_loaded', help: 'API keys loaded now.', registers: [registry] });
  new Gauge({
    name: 'auth_redis_degraded',
    help: '1 while Redis is unreachable and the in-memory insurance limiter serves (limits per instance).',
    registers: [registry],
    collect() {
      this.set(isRedisDegraded() ? 1 : 0);
    },
  });
  return {
    decision: (result) => decisions.inc({ result }),
    keysLoaded: (count) => keys.set(count),
  };
}
