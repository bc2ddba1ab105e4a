// A provider that publishes its utilisation (chutes.ai's /chutes/utilization format) is routed
// around while busy, from the background poll alone.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { FakeOpenAI } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-0123456789';
const KEY = 'chutes-key-0123456789';

describe('routing by a provider utilisation API', () => {
  let provider: FakeOpenAI;
  let utilization: Server;
  let auth: AuthStub;
  let gateway: GatewayHarness;
  let busy = 0.9;
  const seenKeys: (string | undefined)[] = [];

  before(async () => {
    provider = await FakeOpenAI.start({ apiKey: KEY });
    utilization = createServer((req, res) => {
      seenKeys.push(req.headers.authorization);
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify([
          { chute_id: 'x1', name: 'other/model', utilization_current: 0 },
          { chute_id: 'x2', name: 'deepseek/busy', utilization_current: busy },
        ]),
      );
    });
    await new Promise<void>((resolve) => utilization.listen(0, '127.0.0.1', resolve));
    const utilizationUrl = `http://127.0.0.1:${(utilization.address() as AddressInfo).port}/chutes/utilization`;
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
    gateway = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: [
        'models:',
        '  m: { tiers: [[chutes, other]] }',
        'backends:',
        `  chutes: { kind: openai, url: "${provider.url}", apiKeyEnv: CHUTES_KEY, model: deepseek/busy, utilizationUrl: "${utilizationUrl}" }`,
        `  other: { kind: openai, url: "${provider.url}", apiKeyEnv: CHUTES_KEY, maxInFlight: 4 }`,
      ].join('\n'),
      backendKeys: { CHUTES_KEY: KEY },
      backendPollMs: 50,
    });
  });

  after(async () => {
    await gateway.stop();
    await auth.stop();
    await provider.stop();
    utilization.closeAllConnections();
    await new Promise((resolve) => utilization.close(resolve));
  });

  const servedBy = async () => {
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    });
    await res.arrayBuffer();
    return res.headers.get('x-gateway-backend');
  };

  it('sends requests to the other backend while the provider reports itself busy, and back when it is not', async () => {
    await waitFor('a utilisation poll', async () => seenKeys.length > 0, 2000, 10);
    assert.equal(seenKeys[0], `Bearer ${KEY}`);
    for (let i = 0; i < 4; i += 1) assert.equal(await servedBy(), 'other');
    busy = 0;
    const polls = seenKeys.length;
    await waitFor('the next poll', async () => seenKeys.length > polls + 1, 2000, 10);
    const served = await Promise.all(Array.from({ length: 4 }, servedBy));
    assert.ok(served.includes('chutes'), `served by ${served.join(', ')}`);
  });
});
