import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../../dist/main.js', import.meta.url));

export interface OrchestratorProcess {
  pid: number;
  /** Everything it (and its children) printed so far. */
  output(): string;
  /** Parsed JSON log lines of the orchestrator itself. */
  records(): Record<string, unknown>[];
  exited: Promise<number | null>;
  /** False until it has exited. */
  hasExited(): boolean;
  signal(signal: NodeJS.Signals): void;
}

/** `node services/orchestrator/dist/main.js <mode>` with the given environment on top of ours. */
export function runOrchestrator(mode: 'prepare' | 'supervise', env: Record<string, string>): OrchestratorProcess {
  const child = spawn(process.execPath, [main, mode], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (text += c.toString('utf8')));
  let done = false;
  // A test run that dies must not leave an orchestrator behind; one that ends it drops the guard.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      done = true;
      process.off('exit', killOnExit);
      resolve(code);
    }),
  );
  return {
    pid: child.pid!,
    output: () => text,
    records: () =>
      text
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes('"service":"orchestrator"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
    hasExited: () => done,
    signal: (signal) => void child.kill(signal),
  };
}
