// Least-busy routing and the circuit breaker in front of three real llama-servers (tiny model, two
// slots each) serving one model.
import assert from 'node:assert/strict';
import { LlamaServer, waitFor } from '@gguf-gateway/testkit';
import { AuthStub } from '../support/auth-stub.js';
import { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-0123456789';
const BACKEND_KEY = 'llama-backend-key-0123456789';
const NAMES = ['a', 'b', 'c'] as const;
const POLL_MS = 100;
const COOLDOWN_MS = 500;

describe('routing across three llama.cpp servers', function () {
  this.timeout(60_000);
  let servers: Record<(typeof NAMES)[number], LlamaServer>;
  let auth: AuthStub;
  let gateway: GatewayHarness;

  before(async () => {
    // A large context lets one stream run for seconds: the tiny model writes thousands of tokens a second.
    const started = await Promise.all(
      NAMES.map(() => LlamaServer.start({ slots: 2, apiKey: BACKEND_KEY, ctxSize: 2 * 12_288 })),
    );
    servers = { a: started[0]!, b: started[1]!, c: started[2]! };
    auth = await AuthStub.start({ keys: [{ id: 'user', secret: USER }] });
    gateway = await GatewayHarness.start({
      authUrl: auth.url,
      backendsYaml: [
        'models:',
        '  tiny: { tiers: [[a, b, c]] }',
        'backends:',
        ...NAMES.map((n) => `  ${n}: { kind: llamacpp, url: "${servers[n].url}" }`),
      ].join('\n'),
      inferenceApiKey: BACKEND_KEY,
      breaker: { failureThreshold: 2, cooldownMs: COOLDOWN_MS },
      backendPollMs: POLL_MS,
    });
  });

  after(async () => {
    await gateway?.stop();
    await auth?.stop();
    await Promise.all(Object.values(servers ?? {}).map((s) => s.stop()));
  });

  function chat(body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
    return fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], ...body }),
      signal,
    });
  }

  async function busySlots(server: LlamaServer): Promise<number> {
    const res = await fetch(`${server.url}/slots`, { headers: { authorization: `Bearer ${BACKEND_KEY}` } });
    const slots = (await res.json()) as { is_processing: boolean }[];
    return slots.filter((s) => s.is_processing).length;
  }

  it('spreads six concurrent long streams 2/2/2 over the three servers', async () => {
    const abort = new AbortController();
    try {
      const streams = await Promise.all(
        Array.from({ length: 6 }, () => chat({ stream: true, max_tokens: 10_000, ignore_eos: true }, abort.signal)),
      );
      // Every stream has sent its first token: all six are generating now.
      await Promise.all(streams.map((res) => res.body!.getReader().read()));
      const busy = await Promise.all(NAMES.map((n) => busySlots(servers[n])));
      assert.deepEqual(busy, [2, 2, 2], 'busy slots of a, b, c as llama.cpp reports them');
      const served = streams.map((res) => res.headers.get('x-gateway-backend')).sort();
      assert.deepEqual(served, ['a', 'a', 'b', 'b', 'c', 'c']);
    } finally {
      abort.abort();
    }
    await waitFor(
      'slots freed',
      async () => (await Promise.all(NAMES.map((n) => busySlots(servers[n])))).every((b) => b === 0),
      5000,
      50,
    );
  });

  it('loses no request of a burst of 200 when one server is killed, cools it down, and takes it back once restarted', async () => {
    const statuses: number[] = [];
    let next = 0;
    let killed: Promise<void> | null = null;
    const worker = async () => {
      while (next < 200) {
        next += 1;
        if (next === 40) killed = servers.c.kill();
        const res = await chat({ max_tokens: 8 });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await killed;
    assert.equal(statuses.length, 200);
    assert.deepEqual(
      statuses.filter((s) => s !== 200),
      [],
      'every request answered 200',
    );
    assert.ok(
      (await gateway.metric('gateway_backend_errors_total', { backend: 'c' })) >= 1,
      'requests did reach the dead server and were retried elsewhere',
    );
    assert.equal(await gateway.metric('gateway_backend_state', { backend: 'c', state: 'cooling_down' }), 1);
    const models = (await (
      await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${USER}` } })
    ).json()) as { data: { id: string; status: string }[] };
    assert.equal(models.data.find((m) => m.id === 'tiny')!.status, 'degraded');
    const served = await gateway.metric('gateway_backend_requests_total', { backend: 'c' });

    await servers.c.start();
    const restarted = performance.now();
    await waitFor(
      'c serving again',
      async () => {
        const res = await chat({ max_tokens: 4 });
        await res.arrayBuffer();
        return res.headers.get('x-gateway-backend') === 'c';
      },
      5000,
      10,
    );
    const backAfterMs = performance.now() - restarted;
    assert.ok(backAfterMs < COOLDOWN_MS + 2 * POLL_MS + 300, `back after ${Math.round(backAfterMs)} ms`);
    assert.ok((await gateway.metric('gateway_backend_requests_total', { backend: 'c' })) > served);
    assert.equal(await gateway.metric('gateway_backend_state', { backend: 'c', state: 'healthy' }), 1);
  });
});
