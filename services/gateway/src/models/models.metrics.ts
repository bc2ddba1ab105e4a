import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AdmissionEvents } from './model-admission.js';
import type { ModelUtilisation } from './models.service.js';

// Names are a contract with the Backends dashboard and its tests; change them there too.
export function createModelsMetrics(registry: Registry): AdmissionEvents {
  const registers = [registry];
  const loaded = new Gauge({
    name: 'gateway_models_loaded',
    help: 'Models loaded in llama-server now (models on demand).',
    registers,
  });
  const loadSeconds = new Histogram({
    name: 'gateway_model_load_seconds',
    help: 'Time from asking llama-server to load a model to the model serving.',
    labelNames: ['model'],
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers,
  });
  const evictions = new Counter({
    name: 'gateway_model_evictions_total',
    help: 'Models unloaded, by reason: lru (room for another), idle, admin, failed (load failed or process died).',
    labelNames: ['reason'],
    registers,
  });
  const waiting = new Gauge({
    name: 'gateway_model_load_waiting',
    help: 'Requests waiting for a model to load or for room to load it.',
    registers,
  });
  for (const reason of ['lru', 'idle', 'admin', 'failed']) evictions.inc({ reason }, 0);
  return {
    loaded: (model, seconds) => loadSeconds.observe({ model }, seconds),
    evicted: (_model, reason) => evictions.inc({ reason }),
    waiting: (delta) => waiting.inc(delta),
    loadedCount: (count) => loaded.set(count),
  };
}

/**
 * Per-model utilisation, read at each scrape: requests in flight (admission) and busy / total slots
 * (the router's /slots?model=<id> at the last sync). Labels only for catalog models: one that leaves
 * the catalog leaves the next scrape.
 */
export function createModelUtilisationMetrics(registry: Registry, read: () => ModelUtilisation[]): void {
  const registers = [registry];
  const perModel = (name: string, help: string, value: (u: ModelUtilisation) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['model'],
      registers,
      collect() {
        this.reset();
        for (const u of read()) this.set({ model: u.model }, value(u));
      },
    });
  perModel(
    'gateway_model_requests_in_flight',
    'Requests holding a slot on a model on demand now (from admission until their response ended).',
    (u) => u.inFlight,
  );
  perModel(
    'gateway_model_slots_busy',
    "Slots of a loaded model's llama-server process processing a request (router's /slots, every 2 s).",
    (u) => u.slots.busy,
  );
  perModel(
    'gateway_model_slots',
    "Slots of a loaded model's llama-server process (its --parallel); 0 while it is not loaded.",
    (u) => u.slots.total,
  );
}
