import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { boundPort, closeServer } from '@gguf-gateway/shared';
import { repoRoot } from '@gguf-gateway/testkit';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the built CLI against `url` with an admin key, as a user would. */
export function runCli(url: string, env: Record<string, string>, ...args: string[]): Promise<CliRun> {
  const started = Date.now();
  const child = spawn(process.execPath, [join(repoRoot, 'packages/cli/dist/main.js'), ...args], {
    env: { PATH: process.env.PATH, GGUF_GATEWAY_URL: url, GGUF_GATEWAY_API_KEY: 'sk-admin-test', ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // A CLI that hangs is killed, so a failing test never leaves it running.
  const killer = setTimeout(() => child.kill(), 10_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}

/**
 * The gateway's admin API as a test plays it: each request is answered by the `handler` the test
 * set last, and recorded in `seen` as `METHOD url authorization`.
 */
export class AdminStandIn {
  handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(500).end();
  readonly seen: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<AdminStandIn> {
    let standIn: AdminStandIn | null = null;
    const server = createServer((req, res) => {
      standIn!.seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      standIn!.handler(req, res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    standIn = new AdminStandIn(server, `http://127.0.0.1:${boundPort(server)}`);
    return standIn;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await closeServer(this.server);
  }
}
