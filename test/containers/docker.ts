import { execFile, spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { repoRoot } from '@gguf-gateway/testkit';

// The Docker daemon, the CLI and docker-compose as the container suite drives them: every call is
// bounded, and a failure says what ran and what it printed.

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export class CommandFailed extends Error {
  constructor(
    readonly command: string,
    readonly code: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${command} failed (${code}):\n${(stderr || stdout).trim().slice(-4000)}`);
  }
}

export function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const { env = process.env, cwd = repoRoot, timeoutMs = 120_000, input } = options;
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { env, cwd, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr });
        const code = (err as { code?: number | string }).code ?? (err.killed ? `killed after ${timeoutMs} ms` : null);
        reject(new CommandFailed(`${command} ${args.join(' ')}`, code, stdout, stderr));
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

export const docker = (args: string[], options?: RunOptions) => run('docker', args, options);

const DAEMON_LOG = join(process.env.GGUF_GATEWAY_CACHE ?? join(homedir(), '.cache', 'gguf-gateway'), 'dockerd.log');

function onPath(command: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${command}`]).then(
    () => true,
    () => false,
  );
}

async function daemonAnswers(): Promise<boolean> {
  return docker(['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 15_000 }).then(
    () => true,
    () => false,
  );
}

/**
 * A Docker daemon to talk to: the running one, or `dockerd` started here when it is installed and
 * we are root. Fails naming what to install or start; never lets the suite skip itself.
 */
export async function ensureDockerDaemon(): Promise<void> {
  const missing = [];
  for (const [command, pkg] of [
    ['docker', 'docker.io'],
    ['docker-compose', 'docker-compose'],
    ['debootstrap', 'debootstrap'],
  ] as const) {
    if (!(await onPath(command))) missing.push(`${command} (Debian package ${pkg})`);
  }
  if (missing.length > 0) {
    throw new Error(
      `The container suite needs ${missing.join(', ')}: run scripts/install-test-tools (apt-get install docker.io docker-compose debootstrap).`,
    );
  }
  if (await daemonAnswers()) return;
  if (!(await onPath('dockerd'))) {
    throw new Error('No Docker daemon answers and dockerd is not installed: apt-get install docker.io, or start one.');
  }
  if (userInfo().uid !== 0) {
    throw new Error('No Docker daemon answers, and only root can start dockerd here: start it (sudo dockerd &).');
  }
  mkdirSync(join(DAEMON_LOG, '..'), { recursive: true });
  const log = openSync(DAEMON_LOG, 'a');
  // Detached: the daemon outlives this test run, as it would as a system service.
  const daemon = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] });
  daemon.unref();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await daemonAnswers()) return;
    if (daemon.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`dockerd did not start within 60 s (exit ${daemon.exitCode}); its log: ${DAEMON_LOG}`);
}

/** docker-compose (Debian's 1.29) for one project: its own name, environment and files. */
export class ComposeProject {
  constructor(
    readonly name: string,
    readonly env: NodeJS.ProcessEnv,
    readonly files: string[] = ['docker-compose.yml'],
  ) {}

  run(args: string[], timeoutMs = 300_000): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.env, COMPOSE_PROJECT_NAME: this.name };
    delete env.COMPOSE_PROFILES;
    delete env.COMPOSE_FILE;
    return run('docker-compose', [...this.files.flatMap((f) => ['-f', f]), ...args], { env, timeoutMs });
  }

  /** The container id of a service (of its one container), or null when it has none. */
  async containerId(service: string): Promise<string | null> {
    const { stdout } = await this.run(['ps', '-a', '-q', service], 60_000);
    return stdout.trim().split('\n')[0] || null;
  }

  async inspect(service: string, format: string): Promise<string> {
    const id = await this.containerId(service);
    if (!id) throw new Error(`${this.name}: ${service} has no container`);
    return (await docker(['inspect', '--format', format, id])).stdout.trim();
  }

  async logs(service?: string): Promise<string> {
    const { stdout } = await this.run(['logs', '--no-color', ...(service ? [service] : [])], 60_000).catch(
      (err: CommandFailed) => err,
    );
    return stdout;
  }

  /** Everything the project made goes: containers, networks, volumes. */
  async down(): Promise<void> {
    await this.run(['down', '-v', '--remove-orphans', '--timeout', '5'], 180_000).catch(() => undefined);
    // A container compose lost track of (a failed `up`) still carries the project label.
    const { stdout } = await docker(['ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${this.name}`]);
    const ids = stdout.trim().split('\n').filter(Boolean);
    if (ids.length > 0) await docker(['rm', '-f', '-v', ...ids]).catch(() => undefined);
  }
}

/** Names unique to this run, so that two runs on one machine never share a project or volume. */
export function runId(): string {
  return `${process.pid.toString(36)}${Date.now().toString(36).slice(-5)}`;
}
