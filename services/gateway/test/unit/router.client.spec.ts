import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from '@gguf-gateway/testkit';
import { LlamaRouterClient } from '../../src/models/router.client.js';

describe('models router client', () => {
  it("says the router is not reachable without its address: the text reaches clients' 503 and /v1/models", async () => {
    const port = await freePort();
    const client = new LlamaRouterClient(new URL(`http://127.0.0.1:${port}`), 'inference-key-0123456789', 1000);
    for (const call of [() => client.list(), () => client.load('alpha', 1000)]) {
      await assert.rejects(call(), (err: Error) => {
        assert.match(err.message, /the models router is not reachable/);
        assert.doesNotMatch(err.message, new RegExp(`127\\.0\\.0\\.1|${port}|ECONNREFUSED`));
        // Where it failed stays with the error, for the log line.
        assert.match(String((err.cause as Error | undefined)?.message), /ECONNREFUSED|fetch failed/);
        return true;
      });
    }
  });
});

describe('models router client against a router whose model never stops', () => {
  let server: Server;
  let url: URL;
  before(async () => {
    // Takes the unload and then lists the model as loaded forever (a child process that hangs on exit).
    server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST') return res.end('{"success":true}');
      res.end(JSON.stringify({ data: [{ id: 'alpha', status: { value: 'loaded' } }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  it('gives up waiting for the unload after its deadline instead of polling forever', async () => {
    const client = new LlamaRouterClient(url, undefined, 1000);
    const started = performance.now();
    await assert.rejects(client.unload('alpha', 300), /did not stop within/);
    assert.ok(performance.now() - started < 2000);
  });
});
