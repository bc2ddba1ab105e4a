import { execFile } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { freePort, waitFor } from './ports.js';
import { killProcess, startProcess, stopProcess, type ManagedProcess } from './processes.js';
import { repoRoot, testSettings } from './settings.js';

let binary: Promise<string> | null = null;

/** The llama-server binary: LLAMA_SERVER_BIN, or scripts/build-llama-server's cached build (built when missing). */
export function llamaServerBinary(): Promise<string> {
  binary ??= (async () => {
    if (testSettings.LLAMA_SERVER_BIN) return testSettings.LLAMA_SERVER_BIN;
    const script = join(repoRoot, 'scripts', 'build-llama-server');
    try {
      const { stdout } = await promisify(execFile)(script, [], { maxBuffer: 16 * 1024 * 1024 });
      return stdout.trim().split('\n').pop()!;
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr ?? '';
      throw new Error(`scripts/build-llama-server failed; run it by hand to see why:\n${stderr.slice(-2000)}`, {
        cause: err,
      });
    }
  })();
  return binary;
}

let tinyModel: Promise<string> | null = null;

/** The tiny llama model written by our GGUF writer, once per test process. */
export function tinyModelPath(): Promise<string> {
  tinyModel ??= (async () => {
    const dir = join(tmpdir(), `gg-tiny-model-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'tiny-llama.gguf');
    if (!existsSync(path)) await writeTinyLlama(path);
    return path;
  })();
  return tinyModel;
}

export interface LlamaServerOptions {
  model?: string;
  apiKey?: string;
  /** Parallel slots (default 2). */
  slots?: number;
  ctxSize?: number;
  extraArgs?: string[];
  port?: number;
}

export interface LlamaRouterOptions {
  /** Every .gguf here is a model the router lists (--models-dir). */
  modelsDir: string;
  apiKey?: string;
  /** Defaults every child process inherits (the router's own args are merged over each model's). */
  slots?: number;
  ctxSize?: number;
  extraArgs?: string[];
  port?: number;
}

/** A real llama-server on a free port, serving the tiny model unless told otherwise. */
export class LlamaServer {
  private proc: ManagedProcess | null = null;
  private constructor(
    readonly port: number,
    private readonly args: string[],
    private readonly bin: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(options: LlamaServerOptions = {}): Promise<LlamaServer> {
    const bin = await llamaServerBinary();
    const port = options.port ?? (await freePort());
    const args = [
      '--model',
      options.model ?? (await tinyModelPath()),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--parallel',
      String(options.slots ?? 2),
      '--ctx-size',
      String(options.ctxSize ?? 2048),
      '--threads',
      '1',
      '--slots',
      '--metrics',
      '--no-webui',
      ...(options.apiKey ? ['--api-key', options.apiKey] : []),
      ...(options.extraArgs ?? []),
    ];
    const server = new LlamaServer(port, args, bin);
    await server.start();
    return server;
  }

  /**
   * llama-server in router mode, as models on demand run it: it lists MODELS_DIR, loads nothing by
   * itself (--no-models-autoload) and sets no limit of its own (--models-max 0): the gateway decides.
   */
  static async startRouter(options: LlamaRouterOptions): Promise<LlamaServer> {
    const bin = await llamaServerBinary();
    const port = options.port ?? (await freePort());
    const args = [
      '--models-dir',
      options.modelsDir,
      '--no-models-autoload',
      '--models-max',
      '0',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--parallel',
      String(options.slots ?? 2),
      '--ctx-size',
      String(options.ctxSize ?? 2048),
      '--threads',
      '1',
      '--no-webui',
      ...(options.apiKey ? ['--api-key', options.apiKey] : []),
      ...(options.extraArgs ?? []),
    ];
    const server = new LlamaServer(port, args, bin);
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    this.proc = startProcess(this.bin, this.args);
    const proc = this.proc;
    await waitFor(
      `llama-server /health on port ${this.port}`,
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`llama-server exited:\n${proc.output()}`);
        const res = await fetch(`${this.url}/health`);
        return res.status === 200;
      },
      60_000,
    );
  }

  output(): string {
    return this.proc?.output() ?? '';
  }

  async stop(): Promise<void> {
    if (this.proc) await stopProcess(this.proc);
  }

  async kill(): Promise<void> {
    if (this.proc) await killProcess(this.proc);
  }
}
