import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BackendHealth } from './routing/backend-state.js';
import type { ModelRouter } from './routing/model-router.js';

const HEALTH_STATES: BackendHealth[] = ['healthy', 'cooling_down'];

// Names are a contract with the dashboards (DESIGN.md); change them there too.
export function createGatewayMetrics(registry: Registry, router: ModelRouter) {
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
      help: 'Backend failures, by backend and reason (connect|tls|timeout|idle_timeout|status_5xx|status_429|reset|backend_auth).',
      labelNames: ['backend', 'reason'],
      registers,
    }),
    backendRequests: new Counter({
      name: 'gateway_backend_requests_total',
      help: 'Attempts sent to a backend (a retried request counts once per backend tried).',
      labelNames: ['backend'],
      registers,
    }),
    backendErrors: new Counter({
      name: 'gateway_backend_errors_total',
      help: 'Attempts that failed: connect error, reset, timeout, 5xx, 429 or a refused key.',
      labelNames: ['backend'],
      registers,
    }),
    backendFallbacks: new Counter({
      name: 'gateway_backend_fallbacks_total',
      help: 'Requests answered by a backend of a fallback tier (not the first).',
      labelNames: ['model'],
      registers,
    }),
    // Read from the router at scrape time, so a reload's backends appear and removed ones go.
    backendInFlight: new Gauge({
      name: 'gateway_backend_in_flight',
      help: 'Requests this gateway is proxying to each backend now.',
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        for (const b of router.backends()) this.set({ backend: b.name }, b.inFlight);
      },
    }),
    backendState: new Gauge({
      name: 'gateway_backend_state',
      help: 'Circuit breaker state of each backend: 1 for its current state (healthy|cooling_down).',
      labelNames: ['backend', 'state'],
      registers,
      collect() {
        this.reset();
        for (const b of router.backends()) {
          for (const state of HEALTH_STATES) this.set({ backend: b.name, state }, b.health === state ? 1 : 0);
        }
      },
    }),
    usageEventsDropped: new Counter({
      name: 'gateway_usage_events_dropped_total',
      help: 'Usage events that could not be written to the Redis stream.',
      registers,
    }),
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
