import type { BackendKind } from '@gguf-gateway/shared';

// One backend as the router sees it: its configuration, how busy it is, and its circuit breaker.
// The object outlives hot reloads while the backend keeps its name and URL, so that in-flight
// counts and the breaker's memory survive an edit of the file.

export interface Backend {
  name: string;
  kind: BackendKind;
  /** Server root: `/v1/...` paths are appended to it. */
  url: URL;
  /** Sent as `Authorization: Bearer` to the backend, never the client's key. */
  apiKey: string | undefined;
  /** The variable the key came from, named in errors instead of the key. */
  apiKeyEnv: string | undefined;
  /** The model name the backend expects, when it differs from the public one. */
  model: string | undefined;
  maxInFlight: number | undefined;
  utilizationUrl: URL | undefined;
}

export interface BreakerSettings {
  /** Consecutive failures that cool a backend down. */
  failureThreshold: number;
  /** Between two probes of a cooled-down backend (the first comes at the next poll). */
  cooldownMs: number;
}

export type BackendHealth = 'healthy' | 'cooling_down';

export class BackendState {
  /** Requests this gateway is proxying to the backend now. */
  inFlight = 0;
  /** llama.cpp slots busy at the last poll (this gateway's requests and everyone else's). */
  busySlots = 0;
  /** llama.cpp slots in total, from the last poll; null until known. */
  slots: number | null = null;
  /** A provider's own utilisation (0..1) from its utilisation API; null when not configured. */
  utilization: number | null = null;
  health: BackendHealth = 'healthy';
  /** Why it was cooled down last, shown to clients in a 503: a reason, never a key, address or error text. */
  lastProblem: string | null = null;
  /** The monitor's last question got its answer (see BACKEND_KINDS' `health`); false until the first. */
  answering = false;
  /** A request saw 401/403: the next poll asks the backend with the gateway's key whether it is refused. */
  keyProbeWanted = false;
  private consecutiveFailures = 0;
  private coolingUntil = 0;

  constructor(
    public backend: Backend,
    private readonly breaker: BreakerSettings,
    private readonly onChange: (state: BackendState, problem: string | null) => void = () => undefined,
  ) {}

  get name(): string {
    return this.backend.name;
  }

  /** May take a request now: healthy and under its maxInFlight. */
  get available(): boolean {
    const max = this.backend.maxInFlight;
    return this.health === 'healthy' && (max === undefined || this.inFlight < max);
  }

  /**
   * Counts for the gateway's readiness (/ping, /readyz): in rotation by the breaker, and answering
   * the monitor's polls, so the load balancer never sees ready while every backend cools down.
   */
  get ready(): boolean {
    return this.health === 'healthy' && this.answering;
  }

  /** Busy share of its capacity (0 idle, 1 full); the router prefers the lowest. */
  load(): number {
    const capacity = this.backend.maxInFlight ?? this.slots ?? 1;
    const busy = Math.max(this.inFlight, this.busySlots) / capacity;
    return Math.max(busy, this.utilization ?? 0);
  }

  /** Until when (epoch ms) it is skipped; 0 when healthy. */
  get retryAt(): number {
    return this.health === 'cooling_down' ? this.coolingUntil : 0;
  }

  succeeded(): void {
    this.consecutiveFailures = 0;
  }

  /** A failed request or poll; the threshold-th in a row cools it down. */
  failed(problem: string, now = Date.now()): void {
    this.consecutiveFailures += 1;
    if (this.health === 'healthy' && this.consecutiveFailures >= this.breaker.failureThreshold)
      this.coolDown(problem, now);
  }

  /** A 401/403 to a request: a probe with the gateway's key decides whether it cools down. */
  suspectKey(): void {
    this.keyProbeWanted = true;
  }

  /**
   * Takes it out of rotation. It is probed at the next poll (half-open: a restarted backend is back
   * as soon as it answers), then every `cooldownMs` while probes fail.
   */
  coolDown(problem: string, now = Date.now(), probeInMs = 0): void {
    const wasHealthy = this.health === 'healthy';
    this.health = 'cooling_down';
    this.coolingUntil = now + probeInMs;
    this.lastProblem = problem;
    if (wasHealthy) this.onChange(this, problem);
  }

  /** A cooled-down backend whose period is over is due for a probe. */
  probeDue(now = Date.now()): boolean {
    return this.health === 'cooling_down' && now >= this.coolingUntil;
  }

  /** The probe's answer: back to healthy, or the next probe after another cooling period. */
  probed(problem: string | null, now = Date.now()): void {
    // A failed probe keeps the reason it was taken out for (a refused key, a refused connection).
    if (problem !== null) return this.coolDown(this.lastProblem ?? problem, now, this.breaker.cooldownMs);
    this.health = 'healthy';
    this.consecutiveFailures = 0;
    this.lastProblem = null;
    this.onChange(this, null);
  }
}
