import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '@gguf-gateway/shared';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this user (Postgres refuses root). */
  uid?: number;
  gid?: number;
  /** Resolves true once the process serves (its /readyz, /health, PING). */
  ready: () => Promise<boolean>;
  /** Signal that asks for a graceful stop (Postgres: SIGINT, its fast shutdown). */
  stopSignal?: NodeJS.Signals;
  /** How long it may take to stop before SIGKILL. */
  stopGraceMs: number;
  /** How long it may take to become ready, when not the supervisor's default (a large model loading). */
  readyTimeoutMs?: number;
}

export type ProcessState = 'starting' | 'ready' | 'restarting' | 'stopping' | 'stopped';

export interface ProcessStatus {
  name: string;
  state: ProcessState;
  pid: number | null;
  restarts: number;
  lastExit: string | null;
}

export interface SupervisorOptions {
  readyTimeoutMs: number;
  backoffMs: number;
  backoffMaxMs: number;
  /** A process up this long counts as healthy again: its next crash restarts after the base backoff. */
  stableAfterMs?: number;
  readyIntervalMs?: number;
}

export interface SupervisorHooks {
  onStatus?: (status: ProcessStatus) => void;
  onRestart?: (name: string) => void;
}

interface Entry {
  spec: ProcessSpec;
  status: ProcessStatus;
  child: ChildProcess | null;
  exited: Promise<void>;
  startedAt: number;
  crashesInARow: number;
  /** Until its first ready, a crash fails start() instead of restarting. */
  everReady: boolean;
  restartTimer: NodeJS.Timeout | null;
  tail: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts processes one after another, each only once the previous one is ready; restarts a crashed
 * one with exponential backoff; stops them in reverse order of start.
 */
export class ProcessSupervisor {
  private readonly entries: Entry[] = [];
  private stopping = false;

  constructor(
    private readonly logger: Logger,
    private readonly options: SupervisorOptions,
    private readonly hooks: SupervisorHooks = {},
  ) {}

  statuses(): ProcessStatus[] {
    return this.entries.map((e) => ({ ...e.status }));
  }

  /** Spawns the process and resolves once it is ready; rejects if it exits or stays unready too long. */
  async start(spec: ProcessSpec): Promise<void> {
    // A start racing a SIGTERM must not leave a process behind that stopAll has already passed.
    if (this.stopping) throw new Error(`not starting ${spec.name}: stopping`);
    const entry: Entry = {
      spec,
      status: { name: spec.name, state: 'starting', pid: null, restarts: 0, lastExit: null },
      child: null,
      exited: Promise.resolve(),
      startedAt: 0,
      crashesInARow: 0,
      everReady: false,
      restartTimer: null,
      tail: [],
    };
    this.entries.push(entry);
    this.spawn(entry);
    this.logger.info({ process: spec.name }, `starting ${spec.name}; waiting for it to be ready`);
    const readyTimeoutMs = spec.readyTimeoutMs ?? this.options.readyTimeoutMs;
    const deadline = Date.now() + readyTimeoutMs;
    const child = entry.child!;
    while (Date.now() < deadline) {
      if (this.stopping) throw new Error(`stopped while ${spec.name} was starting`);
      if (child.exitCode !== null || child.signalCode !== null || entry.child !== child) {
        throw new Error(`${spec.name} exited while starting (${entry.status.lastExit}):\n${entry.tail.join('\n')}`);
      }
      if (await spec.ready().catch(() => false)) {
        entry.everReady = true;
        this.setState(entry, 'ready');
        this.logger.info({ process: spec.name, pid: child.pid }, `${spec.name} is ready`);
        return;
      }
      await sleep(this.options.readyIntervalMs ?? 200);
    }
    throw new Error(`${spec.name} was not ready within ${readyTimeoutMs} ms:\n${entry.tail.join('\n')}`);
  }

  /** Stops every process, the last started first; each gets its grace period before SIGKILL. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const entry of [...this.entries].reverse()) {
      if (entry.restartTimer) clearTimeout(entry.restartTimer);
      const child = entry.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) {
        this.setState(entry, 'stopped');
        continue;
      }
      this.setState(entry, 'stopping');
      this.logger.info({ process: entry.spec.name, graceMs: entry.spec.stopGraceMs }, `stopping ${entry.spec.name}`);
      child.kill(entry.spec.stopSignal ?? 'SIGTERM');
      const timer = setTimeout(() => {
        this.logger.warn({ process: entry.spec.name }, `${entry.spec.name} did not stop in time: SIGKILL`);
        child.kill('SIGKILL');
      }, entry.spec.stopGraceMs);
      await entry.exited;
      clearTimeout(timer);
      this.setState(entry, 'stopped');
    }
  }

  /**
   * SIGKILLs every live process group at once, synchronously: for the 'exit' of a crashing
   * orchestrator, whose detached children would otherwise keep their ports.
   */
  killAllNow(): void {
    this.stopping = true;
    for (const entry of this.entries) {
      if (entry.restartTimer) clearTimeout(entry.restartTimer);
      const child = entry.child;
      if (!child?.pid || child.exitCode !== null || child.signalCode !== null) continue;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }
  }

  private setState(entry: Entry, state: ProcessState): void {
    entry.status.state = state;
    this.hooks.onStatus?.({ ...entry.status });
  }

  private spawn(entry: Entry): void {
    const { spec } = entry;
    const child = spawn(spec.command, spec.args, {
      env: spec.env ?? process.env,
      cwd: spec.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a Ctrl-C in a terminal reaches only us, and we stop them in order.
      detached: true,
      ...(spec.uid !== undefined ? { uid: spec.uid, gid: spec.gid } : {}),
    });
    entry.child = child;
    entry.startedAt = Date.now();
    entry.status.pid = child.pid ?? null;
    // Children log to our stdout/stderr (one container log); the tail explains a failed start.
    const keep = (chunk: Buffer, sink: NodeJS.WriteStream) => {
      sink.write(chunk);
      entry.tail.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      if (entry.tail.length > 20) entry.tail.splice(0, entry.tail.length - 20);
    };
    child.stdout?.on('data', (c: Buffer) => keep(c, process.stdout));
    child.stderr?.on('data', (c: Buffer) => keep(c, process.stderr));
    entry.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        entry.tail.push(`spawn error: ${err.message}`);
        entry.status.lastExit = `spawn error: ${err.message}`;
        resolve();
        this.onExit(entry, child);
      });
      child.once('exit', (code, signal) => {
        entry.status.lastExit = signal ? `signal ${signal}` : `exit code ${code}`;
        entry.status.pid = null;
        resolve();
        this.onExit(entry, child);
      });
    });
  }

  private onExit(entry: Entry, child: ChildProcess): void {
    if (this.stopping || entry.child !== child || !entry.everReady) return;
    const { backoffMs, backoffMaxMs, stableAfterMs = 60_000 } = this.options;
    entry.crashesInARow = Date.now() - entry.startedAt >= stableAfterMs ? 1 : entry.crashesInARow + 1;
    const delay = Math.min(backoffMaxMs, backoffMs * 2 ** (entry.crashesInARow - 1));
    entry.status.restarts++;
    this.setState(entry, 'restarting');
    this.hooks.onRestart?.(entry.spec.name);
    this.logger.error(
      {
        process: entry.spec.name,
        lastExit: entry.status.lastExit,
        restartInMs: delay,
        restarts: entry.status.restarts,
      },
      `${entry.spec.name} exited (${entry.status.lastExit}); restarting in ${delay} ms`,
    );
    entry.restartTimer = setTimeout(() => {
      entry.restartTimer = null;
      if (this.stopping) return;
      this.spawn(entry);
      this.setState(entry, 'starting');
      void this.watchReady(entry, entry.child!);
    }, delay);
  }

  /** After a restart: marks the process ready once it answers, without holding anyone up. */
  private async watchReady(entry: Entry, child: ChildProcess): Promise<void> {
    while (!this.stopping && entry.child === child && child.exitCode === null && child.signalCode === null) {
      if (await entry.spec.ready().catch(() => false)) {
        if (entry.child === child && !this.stopping) {
          this.setState(entry, 'ready');
          this.logger.info({ process: entry.spec.name, pid: child.pid }, `${entry.spec.name} is ready again`);
        }
        return;
      }
      await sleep(this.options.readyIntervalMs ?? 200);
    }
  }
}
