import { ApiError, serviceUnavailable } from '@gguf-gateway/shared';

// Decides what is loaded. llama-server's router loads and unloads when told (autoload off); this
// says when: a request for a model takes a slot on it (loading it first if needed), and gives the
// slot back when its response has ended. Room for a model is made by unloading the least recently
// used loaded model that has no request in flight and none waiting for it; a busy model is never
// unloaded, so no stream is ever cut. When every loaded model is busy the request waits, bounded.
// Everything is decided synchronously between awaits, so two requests never claim the same room.

/** What admission needs to know of a model. */
export interface AdmittedModel {
  name: string;
  routerId: string;
  /** Memory it takes once loaded (the planner's total). */
  bytes: number;
}

/** Starts and stops a model's process (llama-server's router); load resolves once it serves. */
export interface ModelLoader {
  load(routerId: string, timeoutMs: number): Promise<void>;
  unload(routerId: string): Promise<void>;
}

export type EvictionReason = 'lru' | 'idle' | 'admin' | 'failed';

export interface AdmissionEvents {
  loaded(model: string, seconds: number): void;
  evicted(model: string, reason: EvictionReason): void;
  /** Requests waiting for a load or for room: +1 when one starts waiting, -1 when it stops. */
  waiting(delta: number): void;
  loadedCount(count: number): void;
}

export interface AdmissionSettings {
  /** At most this many loaded at once; 0: as many as fit in memoryBytes. */
  maxLoaded: number;
  memoryBytes: number;
  /** How long a request waits for room before 503 model_capacity. */
  capacityWaitMs: number;
  loadTimeoutMs: number;
  /** Unload a model idle this long; 0: never. */
  idleUnloadMs: number;
  /** Names never unloaded to make room or for idleness. */
  pinned: ReadonlySet<string>;
}

export type LoadState = 'unloaded' | 'loading' | 'loaded' | 'unloading';

interface Entry {
  model: AdmittedModel;
  state: LoadState;
  inFlight: number;
  /** Requests waiting on this model's load: it is not unloaded under them. */
  waiting: number;
  lastUsedAt: number;
  /** The load or unload in progress. */
  pending: Promise<void> | null;
  /** Why its last load failed; cleared by the next explicit load. */
  failure: string | null;
  /** Its files are being deleted: no request may load it (until forget()). */
  retired: boolean;
  /** When its last load or unload ended (this.now()): a router list older than that is stale for it. */
  settledAt: number;
}

/** Gives back one slot; calling it again does nothing. */
export type Release = () => void;

const NOOP = () => undefined;
/** A failed load is not retried by requests for this long (an explicit admin load retries at once). */
const FAILED_LOAD_RETRY_MS = 30_000;

export class ModelAdmission {
  private readonly entries = new Map<string, Entry>();
  /** Requests waiting for room: woken on every release, unload and failed load. */
  private readonly wakers = new Set<() => void>();
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly loader: ModelLoader,
    private readonly settings: AdmissionSettings,
    private readonly events: AdmissionEvents,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A slot on the model, loading it first if needed; the caller must release it when its response
   * has ended. Throws 503 (model_capacity, model_too_large, model_load_failed) when it cannot have one.
   */
  async acquire(model: AdmittedModel, signal?: AbortSignal): Promise<Release> {
    const deadline = this.now() + this.settings.capacityWaitMs;
    let waiting = false;
    const startWaiting = () => {
      if (!waiting) this.events.waiting(1);
      waiting = true;
    };
    try {
      for (;;) {
        if (signal?.aborted) throw new ApiError(499, 'The client closed the request.', { code: 'client_aborted' });
        const entry = this.entry(model);
        if (entry.retired) {
          throw new ApiError(404, `The model '${model.name}' is being deleted.`, {
            code: 'model_not_found',
            param: 'model',
          });
        }
        if (entry.state === 'loaded') return this.take(entry);
        if (entry.pending) {
          startWaiting();
          entry.waiting += 1;
          try {
            // A client that leaves stops waiting at once; the load goes on for the others.
            await untilAborted(entry.pending, signal);
          } catch {
            // The load failed: reported below from entry.failure
          } finally {
            entry.waiting -= 1;
          }
          continue;
        }
        if (entry.failure !== null && this.now() - entry.lastUsedAt < FAILED_LOAD_RETRY_MS) {
          throw serviceUnavailable(
            `The model '${model.name}' failed to load: ${entry.failure}.`,
            Math.ceil(FAILED_LOAD_RETRY_MS / 1000),
            'model_load_failed',
          );
        }
        this.assertCanFit(model);
        const victims = this.roomFor(model);
        if (victims) {
          this.startLoad(entry, victims);
          continue;
        }
        const left = deadline - this.now();
        if (left <= 0) throw this.noCapacity(model);
        startWaiting();
        await this.changed(left, signal);
      }
    } finally {
      if (waiting) this.events.waiting(-1);
    }
  }

  /** Loads the model without taking a slot (admin, pinned models); a failed earlier load is retried. */
  async load(model: AdmittedModel): Promise<void> {
    const entry = this.entry(model);
    entry.failure = null;
    const release = await this.acquire(model);
    release();
  }

  /** Unloads the model unless a request is using or waiting for it (409). */
  async unload(name: string, reason: EvictionReason = 'admin'): Promise<void> {
    const entry = this.entries.get(name);
    if (!entry) return;
    if (entry.inFlight > 0 || entry.waiting > 0 || entry.state === 'loading') {
      throw new ApiError(
        409,
        `The model '${name}' is ${entry.state === 'loading' ? 'loading' : `serving ${entry.inFlight} request(s)`}; it is unloaded once idle.`,
        { code: 'model_busy' },
      );
    }
    if (entry.state === 'unloading') return entry.pending ?? undefined;
    if (entry.state !== 'loaded') return;
    await this.startUnload(entry, reason);
  }

  state(name: string): { state: LoadState; inFlight: number; lastUsedAt: number | null; failure: string | null } {
    const entry = this.entries.get(name);
    return entry
      ? {
          state: entry.state,
          inFlight: entry.inFlight,
          lastUsedAt: entry.lastUsedAt > 0 ? entry.lastUsedAt : null,
          failure: entry.failure,
        }
      : { state: 'unloaded', inFlight: 0, lastUsedAt: null, failure: null };
  }

  /**
   * What the router says is running (its ids), to follow changes the gateway did not make: a
   * process that died is unloaded (evicted as failed), one loaded before this gateway started is adopted.
   * `listedAt`: when the router was asked; a model whose load or unload ended since is left alone.
   */
  reconcile(models: readonly AdmittedModel[], running: ReadonlySet<string>, listedAt: number): void {
    for (const model of models) {
      const entry = this.entry(model);
      if (entry.pending || entry.settledAt >= listedAt) continue;
      if (entry.state === 'loaded' && !running.has(model.routerId)) {
        // Its process died (llama-server crashed or was restarted): the next request loads it again.
        entry.state = 'unloaded';
        this.events.evicted(model.name, 'failed');
        this.events.loadedCount(this.loadedCount());
        this.changedNow();
      } else if (entry.state === 'unloaded' && running.has(model.routerId)) {
        entry.state = 'loaded';
        entry.lastUsedAt = this.now();
        this.events.loadedCount(this.loadedCount());
        this.changedNow();
      }
    }
  }

  /**
   * The router answered a request for this model "model is not loaded": its process died since the
   * last sync. It is unloaded at once (evicted as failed), so that the next acquire loads it again,
   * rather than every request until the next sync getting the router's 400. Requests still holding
   * a slot on it release as usual. Does nothing unless admission thinks it loaded.
   */
  lost(name: string): void {
    const entry = this.entries.get(name);
    if (!entry || entry.state !== 'loaded' || entry.pending) return;
    entry.state = 'unloaded';
    // A router list taken before now, which may still show it running, must not adopt it again.
    entry.settledAt = this.now();
    this.events.evicted(name, 'failed');
    this.events.loadedCount(this.loadedCount());
    this.changedNow();
  }

  /**
   * Marks a model whose files are about to be deleted, so that no request loads it meanwhile;
   * false (and nothing marked) while it is loaded, loading or has requests on it. forget() ends it.
   */
  retire(model: AdmittedModel): boolean {
    const entry = this.entry(model);
    if (entry.state !== 'unloaded' || entry.pending || entry.inFlight > 0 || entry.waiting > 0) return false;
    entry.retired = true;
    return true;
  }

  /** Forgets a model removed from disk (it was not loaded: the caller checked or retired it). */
  forget(name: string): void {
    const entry = this.entries.get(name);
    if (!entry) return;
    entry.retired = false;
    if (entry.state === 'unloaded' && !entry.pending) this.entries.delete(name);
  }

  /** Unloads models idle for idleUnloadMs, on a timer. */
  start(): void {
    if (this.settings.idleUnloadMs <= 0 || this.idleTimer) return;
    this.idleTimer = setInterval(() => this.unloadIdle(), Math.min(1000, this.settings.idleUnloadMs / 2));
    this.idleTimer.unref();
  }

  stop(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
  }

  unloadIdle(): void {
    const now = this.now();
    for (const entry of this.entries.values()) {
      if (entry.state === 'loaded' && this.evictable(entry) && now - entry.lastUsedAt >= this.settings.idleUnloadMs) {
        void this.startUnload(entry, 'idle').catch(NOOP);
      }
    }
  }

  private entry(model: AdmittedModel): Entry {
    let entry = this.entries.get(model.name);
    if (!entry) {
      entry = {
        model,
        state: 'unloaded',
        inFlight: 0,
        waiting: 0,
        lastUsedAt: 0,
        pending: null,
        failure: null,
        retired: false,
        settledAt: 0,
      };
      this.entries.set(model.name, entry);
    } else if (!entry.pending && entry.state === 'unloaded') {
      entry.model = model;
    }
    return entry;
  }

  private take(entry: Entry): Release {
    entry.inFlight += 1;
    entry.lastUsedAt = this.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.inFlight -= 1;
      entry.lastUsedAt = this.now();
      if (entry.inFlight === 0) this.changedNow();
    };
  }

  private evictable(entry: Entry): boolean {
    return entry.inFlight === 0 && entry.waiting === 0 && !this.settings.pinned.has(entry.model.name);
  }

  /** Models loaded or on their way (their memory is taken or about to be). */
  private occupying(): Entry[] {
    return [...this.entries.values()].filter((e) => e.state === 'loaded' || e.state === 'loading');
  }

  private assertCanFit(model: AdmittedModel): void {
    const { memoryBytes } = this.settings;
    const pinned = [...this.entries.values()].filter(
      (e) => this.settings.pinned.has(e.model.name) && e.model.name !== model.name && e.state !== 'unloaded',
    );
    const pinnedBytes = pinned.reduce((sum, e) => sum + e.model.bytes, 0);
    if (model.bytes + pinnedBytes <= memoryBytes) return;
    const pinnedNote = pinned.length > 0 ? ` (${gib(pinnedBytes)} of it held by pinned models)` : '';
    throw serviceUnavailable(
      `The model '${model.name}' needs ${gib(model.bytes)} of memory and the budget is ${gib(memoryBytes)}${pinnedNote}: it cannot be loaded.`,
      3600,
      'model_too_large',
    );
  }

  /**
   * The idle models to unload so that `model` fits (possibly none), least recently used first;
   * null when it cannot fit until a busy model is released.
   */
  private roomFor(model: AdmittedModel): Entry[] | null {
    const { maxLoaded, memoryBytes } = this.settings;
    const occupying = this.occupying();
    let count = occupying.length;
    let bytes = occupying.reduce((sum, e) => sum + e.model.bytes, 0);
    const fits = () => (maxLoaded === 0 || count + 1 <= maxLoaded) && bytes + model.bytes <= memoryBytes;
    const candidates = occupying
      .filter((e) => e.state === 'loaded' && this.evictable(e))
      .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    const victims: Entry[] = [];
    while (!fits() && candidates.length > 0) {
      const victim = candidates.shift()!;
      victims.push(victim);
      count -= 1;
      bytes -= victim.model.bytes;
    }
    return fits() ? victims : null;
  }

  private startLoad(entry: Entry, victims: readonly Entry[]): void {
    const unloads = victims.map((v) => this.startUnload(v, 'lru'));
    entry.state = 'loading';
    entry.failure = null;
    entry.pending = (async () => {
      try {
        // The room is ours once the victims are gone; a failed unload still frees the slot's count.
        await Promise.allSettled(unloads);
        const started = performance.now();
        await this.loader.load(entry.model.routerId, this.settings.loadTimeoutMs);
        entry.state = 'loaded';
        entry.lastUsedAt = this.now();
        this.events.loaded(entry.model.name, (performance.now() - started) / 1000);
      } catch (err) {
        entry.state = 'unloaded';
        entry.failure = (err as Error).message;
        entry.lastUsedAt = this.now();
        this.events.evicted(entry.model.name, 'failed');
        throw err;
      } finally {
        entry.pending = null;
        entry.settledAt = this.now();
        this.events.loadedCount(this.loadedCount());
        this.changedNow();
      }
    })();
    entry.pending.catch(NOOP);
  }

  private startUnload(entry: Entry, reason: EvictionReason): Promise<void> {
    entry.state = 'unloading';
    this.events.evicted(entry.model.name, reason);
    entry.pending = this.loader.unload(entry.model.routerId).finally(() => {
      entry.state = 'unloaded';
      entry.pending = null;
      entry.settledAt = this.now();
      this.events.loadedCount(this.loadedCount());
      this.changedNow();
    });
    return entry.pending;
  }

  private loadedCount(): number {
    return [...this.entries.values()].filter((e) => e.state === 'loaded').length;
  }

  private noCapacity(model: AdmittedModel): ApiError {
    const busy = this.occupying()
      .filter((e) => !this.evictable(e))
      .map((e) => e.model.name);
    return serviceUnavailable(
      `No room to load the model '${model.name}': every loaded model is busy (${busy.join(', ') || 'loading'}); retry shortly.`,
      Math.max(1, Math.ceil(this.settings.capacityWaitMs / 1000)),
      'model_capacity',
    );
  }

  private changed(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done);
      this.wakers.add(done);
    });
  }

  private changedNow(): void {
    for (const wake of [...this.wakers]) wake();
  }
}

/** Settles when `work` does, or as soon as `signal` aborts (without stopping `work`). */
function untilAborted(work: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return work;
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done);
    work.then(done, (err: unknown) => {
      signal.removeEventListener('abort', done);
      reject(err as Error);
    });
  });
}

function gib(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}
