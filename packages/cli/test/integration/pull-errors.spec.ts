import assert from 'node:assert/strict';
import { AdminStandIn, runCli } from '../support/cli-harness.js';

describe('gguf-gateway pull against a gateway that misbehaves', function () {
  this.timeout(20_000);
  let admin: AdminStandIn;

  before(async () => {
    admin = await AdminStandIn.start();
  });

  after(() => admin.stop());

  it('prints one line with the status when a proxy answers an HTML error page, and exits 1', async () => {
    admin.handler = (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body><h1>502 Bad Gateway</h1></body></html>');
    };
    const run = await runCli(admin.url, {}, 'pull', 'acme/m-GGUF', 'm.gguf');
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      `error: 502 Bad Gateway: the answer from ${admin.url} is not JSON (text/html); is GGUF_GATEWAY_URL the gateway?\n`,
    );
  });

  it('gives up with a message when the progress stream stays silent past the idle timeout', async () => {
    admin.handler = (req, res) => {
      if (req.method === 'POST') {
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"jobId":"pull-1","deduplicated":false}');
        return;
      }
      // Headers and one keep-alive, then nothing more: a gateway (or proxy) that hangs.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': keep-alive\n\n');
    };
    const run = await runCli(admin.url, { GGUF_GATEWAY_STREAM_IDLE_MS: '500' }, 'pull', 'acme/m-GGUF', 'm.gguf');
    assert.equal(run.code, 1);
    assert.match(run.stderr, new RegExp(`error: the progress stream from ${admin.url} was silent for 0.5 s`));
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(run.ms < 10_000, `exited after ${run.ms} ms`);
  });
});
