// llama-server in router mode (--models-dir, --no-models-autoload): the only code that talks to its
// model management endpoints. GET /models lists what it knows with each model's state; POST
// /models/load starts a child process and answers at once, so a load is followed by polling the
// list until the model is loaded or has failed.

/** One model as the router lists it. */
export interface RouterModel {
  id: string;
  aliases: string[];
  /** loaded | loading | unloaded | sleeping | downloading | ... */
  status: string;
  /** The child process exited while loading or serving: its exit code. */
  exitCode: number | null;
  /** The options the child gets (ini text of its preset), to plan memory with; null when the router has none. */
  preset: string | null;
  /** models_dir (a file in --models-dir), preset (a section of --models-preset), cache (llama.cpp's HF cache). */
  source: string | null;
  /** The model file its child opens (`--model` of its command line), when the router says. */
  modelPath: string | null;
}

interface RouterModelJson {
  id: string;
  aliases?: string[];
  source?: string;
  status?: { value?: string; failed?: boolean; exit_code?: number; preset?: string; args?: string[] };
}

function modelArg(args: readonly string[] | undefined): string | null {
  const at = (args ?? []).findIndex((a) => a === '--model' || a === '-m');
  return at >= 0 ? (args![at + 1] ?? null) : null;
}

/** A loaded model's parallel slots, as its process reports them (GET /slots?model=<id>). */
export interface SlotCount {
  busy: number;
  total: number;
}

/** Its message may reach clients (a 503, /v1/models' reason): never the router's address; that is in `cause`. */
export class RouterError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RouterError';
  }
}

/** How a model that loads is followed: GET /models every this often. */
const LOAD_POLL_MS = 100;
/** How long a model's process may take to stop; past it, admission stops waiting (the next sync corrects it). */
const UNLOAD_WAIT_MS = 60_000;

export class LlamaRouterClient {
  constructor(
    readonly url: URL,
    private readonly apiKey: string | undefined,
    private readonly timeoutMs: number,
  ) {}

  /** Every model the router knows; `reload` rescans MODELS_DIR and re-reads the preset file first. */
  async list(reload = false): Promise<RouterModel[]> {
    const body = (await this.call('GET', reload ? '/models?reload=1' : '/models')) as { data?: RouterModelJson[] };
    return (body.data ?? []).map((m) => ({
      id: m.id,
      aliases: m.aliases ?? [],
      status: m.status?.value ?? 'unknown',
      exitCode: m.status?.failed ? (m.status.exit_code ?? -1) : null,
      preset: m.status?.preset ?? null,
      source: m.source ?? null,
      modelPath: modelArg(m.status?.args),
    }));
  }

  /**
   * Starts the model's process and waits until it serves, or rejects with why not (the process
   * exited, or it took longer than `timeoutMs`: then it is stopped).
   */
  async load(id: string, timeoutMs: number): Promise<void> {
    try {
      await this.call('POST', '/models/load', { model: id });
    } catch (err) {
      // Loading or loaded already (another gateway, a restart of this one): follow it like ours.
      if (!(err instanceof RouterError && /already running/.test(err.message))) throw err;
    }
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const model = (await this.list()).find((m) => m.id === id);
      if (!model) throw new RouterError('llama-server no longer lists it');
      if (model.status === 'loaded' || model.status === 'sleeping') return;
      if (model.exitCode !== null) {
        throw new RouterError(`llama-server could not load it (its process exited with code ${model.exitCode})`);
      }
      if (model.status === 'unloaded') throw new RouterError('llama-server stopped it while it was loading');
      await new Promise((resolve) => setTimeout(resolve, LOAD_POLL_MS));
    }
    await this.unload(id).catch(() => undefined);
    throw new RouterError(`it did not load within ${Math.round(timeoutMs / 1000)} s (MODEL_LOAD_TIMEOUT_MS)`);
  }

  /** Stops the model's process and waits until the router lists it unloaded, at most `timeoutMs`. */
  async unload(id: string, timeoutMs = UNLOAD_WAIT_MS): Promise<void> {
    try {
      await this.call('POST', '/models/unload', { model: id });
    } catch (err) {
      if (err instanceof RouterError && /not running/.test(err.message)) return;
      throw err;
    }
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const model = (await this.list()).find((m) => m.id === id);
      if (!model || (model.status !== 'loaded' && model.status !== 'loading' && model.status !== 'sleeping')) return;
      await new Promise((resolve) => setTimeout(resolve, LOAD_POLL_MS));
    }
    throw new RouterError(`its process did not stop within ${Math.round(timeoutMs / 1000)} s`);
  }

  /** The slots of a loaded model's process; the router answers only for a running model. */
  async slots(id: string): Promise<SlotCount> {
    const slots = await this.call('GET', `/slots?model=${encodeURIComponent(id)}`);
    if (!Array.isArray(slots)) throw new RouterError('the models router answered /slots with no list of slots');
    return {
      busy: slots.filter((slot) => (slot as { is_processing?: boolean }).is_processing === true).length,
      total: slots.length,
    };
  }

  /** Null when the router answers its /health. */
  async problem(): Promise<string | null> {
    try {
      const res = await fetch(new URL('/health', this.url), { signal: AbortSignal.timeout(this.timeoutMs) });
      await res.body?.cancel();
      return res.status === 200 ? null : `the models router answered /health with ${res.status}`;
    } catch (err) {
      return `the models router: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`;
    }
  }

  private async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const send = () =>
      fetch(new URL(path, this.url), {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    let res: Response;
    try {
      // Once more on a failed connection: the router closes idle keep-alive connections when it
      // starts a model, and every call here may be repeated (a load or unload twice is answered).
      res = await send().catch(() => send());
    } catch (err) {
      throw new RouterError('the models router is not reachable', { cause: (err as Error).cause ?? err });
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: reported below with the status
    }
    if (!res.ok) {
      const message = (json as { error?: { message?: string } } | null)?.error?.message ?? `status ${res.status}`;
      throw new RouterError(`the models router refused ${method} ${path.split('?')[0]}: ${message}`);
    }
    return json;
  }
}
