import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { buildAuth, type AuthParts } from '@gguf-gateway/auth/wiring';
import {
  boundPort,
  closeServer,
  createLogger,
  createMetricsRegistry,
  createRedis,
  listen,
  redisKey,
  RPM_LIMITER_PREFIX,
} from '@gguf-gateway/shared';
import {
  LogCapture,
  TEST_AUTH_INTERNAL_TOKEN,
  deleteRedisPrefix,
  testRedisPrefix,
  testSettings,
  waitFor,
} from '@gguf-gateway/testkit';
import { FakeOpenAI } from '../support/fake-openai.js';
import { GatewayHarness } from '../support/gateway-harness.js';

// Two gateways reusing grants of one real auth service, all on one Redis prefix: the rpm limit and
// revocation hold through the gateways as they do at auth itself.

const BACKEND_KEY = 'backend-own-key-0123456789';
const BURST = 'sk-grant-burst-000000000001';
const REVOKED = 'sk-grant-revoked-0000000002';
const SLOTS = 'sk-grant-slots-000000000003';
const RPM = 20;
const GRANT_TTL_MS = 250;
const KEYS_POLL_MS = 250;

function keysText(withRevoked: boolean): string {
  return [`burst:${BURST}:${RPM}`, withRevoked ? `revoked:${REVOKED}` : '', `slots:${SLOTS} concurrency=1`].join('\n');
}

describe('gateways reusing auth grants', function () {
  const prefix = testRedisPrefix();
  let dir: string;
  let keysFile: string;
  let redis: Redis;
  let registry: Registry;
  let auth: AuthParts;
  let authServer: Server;
  let fake: FakeOpenAI;
  let gateways: GatewayHarness[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gg-grants-'));
    keysFile = join(dir, 'api_keys');
    await writeFile(keysFile, keysText(true), { mode: 0o600 });
    redis = createRedis(testSettings.TEST_REDIS_URL, 'request-path');
    await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
    registry = createMetricsRegistry('auth');
    auth = await buildAuth({
      logger: createLogger({ service: 'auth', destination: new LogCapture() }),
      registry,
      redis,
      redisKeyPrefix: prefix,
      keysFile,
      keysFilePollMs: KEYS_POLL_MS,
      prices: [],
      leaseTtlSec: 60,
      failedAuthMax: 1000,
      failedAuthWindowSec: 60,
      grantTtlMs: GRANT_TTL_MS,
      internalToken: TEST_AUTH_INTERNAL_TOKEN,
    });
    authServer = await listen(auth.app, 0, '127.0.0.1');
    fake = await FakeOpenAI.start({ apiKey: BACKEND_KEY });
    const options = {
      authUrl: `http://127.0.0.1:${boundPort(authServer)}`,
      backendsYaml: `models: { fake: { tiers: [[fake]] } }\nbackends: { fake: { kind: llamacpp, url: "${fake.url}" } }\n`,
      inferenceApiKey: BACKEND_KEY,
      redisPrefix: prefix,
      grants: true,
    };
    gateways = await Promise.all([GatewayHarness.start(options), GatewayHarness.start(options)]);
  });

  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await fake.stop();
    auth.stop();
    await closeServer(authServer);
    redis.disconnect();
    await deleteRedisPrefix(prefix);
    await rm(dir, { recursive: true, force: true });
  });

  const chat = (gateway: GatewayHarness, key: string) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: 'hi' }] }),
    }).then(async (res) => {
      await res.arrayBuffer();
      return res;
    });

  async function authorizeCalls(): Promise<number> {
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'auth_decisions_total');
    return ((metric?.values ?? []) as { value: number }[]).reduce((sum, v) => sum + v.value, 0);
  }

  it('allows exactly rpm across two gateways in a burst of 3x rpm concurrent requests', async () => {
    // One request through each gateway first, so that the burst runs on their grants.
    const first = await Promise.all(gateways.map((g) => chat(g, BURST)));
    const asked = await authorizeCalls();
    assert.deepEqual(
      first.map((r) => r.status),
      [200, 200],
    );
    const burst = await Promise.all(Array.from({ length: 3 * RPM }, (_, i) => chat(gateways[i % 2]!, BURST)));
    const statuses = burst.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, RPM - 2);
    assert.equal(statuses.filter((s) => s === 429).length, 2 * RPM + 2);
    const refused = burst.find((r) => r.status === 429)!;
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.equal(refused.headers.get('x-ratelimit-remaining-requests'), '0');
    // Auth words every refusal; the admitted requests came from the grants.
    assert.ok((await authorizeCalls()) - asked < 3 * RPM, 'some of the burst was admitted without asking auth');
  });

  it('serves a granted key without asking auth, with the x-ratelimit headers counting down', async () => {
    const key = 'sk-grant-headers-0000000004';
    await writeKeys(`${keysText(true)}\nheaders:${key}:100`);
    await waitFor('the new key', async () => (await chat(gateways[0]!, key)).status === 200, 2000, 20);
    const asked = await authorizeCalls();
    const a = await chat(gateways[0]!, key);
    const b = await chat(gateways[0]!, key);
    assert.deepEqual([a.status, b.status], [200, 200]);
    assert.equal(await authorizeCalls(), asked, 'both served from the grant');
    const remaining = [a, b].map((r) => Number(r.headers.get('x-ratelimit-remaining-requests')));
    assert.equal(remaining[1], remaining[0]! - 1);
    assert.equal(b.headers.get('x-ratelimit-limit-requests'), '100');
    assert.match(b.headers.get('x-ratelimit-reset-requests') ?? '', /^\d+(ms|s)$|^\d+m\d+s$/);
  });

  it('leaves exactly the admitted requests counted in the shared window', async () => {
    const key = 'sk-grant-refund-0000000005';
    await writeKeys(`${keysText(true)}\nrefund:${key}:1000`);
    await waitFor('the new key', async () => (await chat(gateways[0]!, key)).status === 200, 2000, 20);
    for (let i = 0; i < 6; i += 1) assert.equal((await chat(gateways[i % 2]!, key)).status, 200);
    const counter = redisKey(prefix, `${RPM_LIMITER_PREFIX}:refund`);
    // Auth counted the requests it admitted, each gateway those it served from its grant.
    await waitFor('the refunds', async () => (await redis.get(counter)) === '7', 2000, 20);
  });

  it('stops a removed key through the gateway within one second', async () => {
    await writeKeys(keysText(true));
    await waitFor('the key', async () => (await chat(gateways[1]!, REVOKED)).status === 200, 2000, 20);
    assert.equal((await chat(gateways[1]!, REVOKED)).status, 200, 'served from the grant');

    await writeKeys(keysText(false));
    const removedAt = performance.now();
    let status = 200;
    while (status === 200 && performance.now() - removedAt < 2000) {
      status = (await Promise.all(gateways.map((g) => chat(g, REVOKED)))).every((r) => r.status === 401) ? 401 : 200;
    }
    const elapsed = performance.now() - removedAt;
    assert.equal(status, 401);
    assert.ok(elapsed < 1000, `revoked after ${Math.round(elapsed)} ms`);
  });

  it('asks auth on every request of a key with a concurrency limit, and settle frees its slot', async () => {
    const asked = await authorizeCalls();
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await chat(gateways[i % 2]!, SLOTS)).status, 200);
      // The slot comes back when the gateway settles, just after the answer.
      const slots = redisKey(prefix, 'auth:slots:slots');
      await waitFor('the slot back', async () => (await redis.zcard(slots)) === 0, 2000, 10);
    }
    assert.equal((await authorizeCalls()) - asked, 3);
  });

  async function writeKeys(text: string): Promise<void> {
    await writeFile(`${keysFile}.tmp`, text, { mode: 0o600 });
    await rename(`${keysFile}.tmp`, keysFile);
  }
});
