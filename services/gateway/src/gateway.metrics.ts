import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

// Names are a contract with the dashboards (DESIGN.md); change them there too.
export function createGatewayMetrics(registry: Registry) {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'gateway_requests_total',
      help: 'Requests answered, by model, route and HTTP status (499: the client went away).',
      labelNames: ['model', 'route', 'status'],
      registers,
    }),
    duration: new Histogram({
      name: 'gateway_request_duration_seconds',
      help: 'Time from request to the last byte of the response.',
      labelNames: ['model', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    ttft: new Histogram({
      name: 'gateway_ttft_seconds',
      help: 'Time to the first streamed chunk of a completion.',
      labelNames: ['model'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    }),
    tokens: new Counter({
      name: 'gateway_tokens_total',
      help: 'Tokens processed, by model and kind (prompt|completion).',
      labelNames: ['model', 'kind'],
      registers,
    }),
    inFlight: new Gauge({
      name: 'gateway_in_flight_requests',
      help: 'Requests being proxied to a backend now.',
      labelNames: ['model'],
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'gateway_upstream_errors_total',
      help: 'Backend failures, by backend and reason (connect|timeout|idle_timeout|status_5xx|reset).',
      labelNames: ['backend', 'reason'],
      registers,
    }),
    usageEventsDropped: new Counter({
      name: 'gateway_usage_events_dropped_total',
      help: 'Usage events that could not be written to the Redis stream.',
      registers,
    }),
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
