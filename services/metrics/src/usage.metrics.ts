import { Counter, Gauge, type Registry } from 'prom-client';
import type { GroupStats } from './usage-stream-group.repository.js';

/** The metrics service's business metrics; names are a contract with the Grafana dashboards. */
export function createUsageMetrics(registry: Registry, stats: () => Promise<GroupStats>) {
  // Read from Redis at scrape time; when Redis does not answer the gauge keeps its last value.
  const readStats = () => stats().catch(() => null);
  return {
    requests: new Counter({
      name: 'usage_requests_total',
      help: 'Requests written to Postgres, by API key, model and status class (2xx|4xx|5xx|aborted).',
      labelNames: ['key_id', 'model', 'status_class'] as const,
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'usage_tokens_total',
      help: 'Tokens of the requests written to Postgres, by API key, model and kind (prompt|completion).',
      labelNames: ['key_id', 'model', 'kind'] as const,
      registers: [registry],
    }),
    cost: new Counter({
      name: 'usage_cost_usd_total',
      help: 'Cost in USD of the requests written to Postgres, from the price table.',
      labelNames: ['key_id', 'model'] as const,
      registers: [registry],
    }),
    written: new Counter({
      name: 'usage_events_written_total',
      help: 'Usage events inserted into Postgres (duplicates of a request id not counted).',
      registers: [registry],
    }),
    writeFailures: new Counter({
      name: 'usage_write_failures_total',
      help: 'Batches that failed to reach Postgres and will be retried.',
      registers: [registry],
    }),
    invalid: new Counter({
      name: 'usage_events_invalid_total',
      help: 'Stream entries that were no valid usage event or that Postgres refused: set aside in usage_rejected_events.',
      registers: [registry],
    }),
    pending: new Gauge({
      name: 'usage_stream_pending',
      help: 'Usage stream entries delivered to a consumer and not yet acknowledged.',
      registers: [registry],
      async collect() {
        const s = await readStats();
        if (s) this.set(s.pending);
      },
    }),
    lag: new Gauge({
      name: 'usage_stream_lag',
      help: 'Usage stream entries not yet delivered to the consumer group.',
      registers: [registry],
      async collect() {
        const s = await readStats();
        if (s && s.lag !== null) this.set(s.lag);
      },
    }),
  };
}

export type UsageMetrics = ReturnType<typeof createUsageMetrics>;
