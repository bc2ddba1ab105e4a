import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { once } from 'node:events';
import { boundPort, closeServer } from '@gguf-gateway/shared';
import { repoRoot } from '@gguf-gateway/testkit';

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the built CLI against `url`, as a user would. */
function cli(url: string, env: Record<string, string>, ...args: string[]): Promise<CliRun> {
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

describe('gguf-gateway pull against a gateway that misbehaves', function () {
  this.timeout(20_000);
  let server: Server;
  let url: string;
  let handler: Parameters<typeof createServer>[1];

  before(async () => {
    server = createServer((req, res) => handler!(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${boundPort(server)}`;
  });

  after(async () => {
    server.closeAllConnections();
    await closeServer(server);
  });

  it('prints one line with the status when a proxy answers an HTML error page, and exits 1', async () => {
    handler = (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body><h1>502 Bad Gateway</h1></body></html>');
    };
    const run = await cli(url, {}, 'pull', 'acme/m-GGUF', 'm.gguf');
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `error: 502 Bad Gateway: the answer from ${url} is not JSON (text/html); is GGUF_GATEWAY_URL the gateway?\n`,
    );
  });

  it('gives up with a message when the progress stream stays silent past the idle timeout', async () => {
    handler = (req, res) => {
      if (req.method === 'POST') {
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"jobId":"pull-1","deduplicated":false}');
        return;
      }
      // Headers and one keep-alive, then nothing more: a gateway (or proxy) that hangs.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': keep-alive\n\n');
    };
    const run = await cli(url, { GGUF_GATEWAY_STREAM_IDLE_MS: '500' }, 'pull', 'acme/m-GGUF', 'm.gguf');
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`error: the progress stream from ${url} was silent for 0.5 s`));
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(run.ms < 10_000, `exited after ${run.ms} ms`);
  });
});
