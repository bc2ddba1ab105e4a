import assert from 'node:assert/strict';
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
