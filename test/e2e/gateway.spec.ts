// The gateway end to end: the real gateway process (services/gateway/dist/main.js) in front of two
// real llama-servers with the tiny model (one for chat/completions, one started with --embeddings),
// driven by the official openai SDK, with the real auth service process (services/auth/dist/main.js)
// reading a keys file and counting limits in Redis.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { USAGE_STREAM, redisKey, type UsageEvent } from '@gguf-gateway/shared';
import {
  LlamaServer,
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  startAuthProcess,
  startGatewayProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  waitFor,
  type ManagedProcess,
  type TestDatabase,
} from '@gguf-gateway/testkit';

const INFERENCE_KEY = 'inference-key-0123456789abcdef';
const USER = 'sk-e2e-user-0123456789';
const LIMITED = 'sk-e2e-limited-0123456789';
const ADMIN = 'sk-e2e-admin-0123456789';
const REVOKED = 'sk-e2e-revoked-0123456789';
const KEYS = [`e2e-user:${USER}`, `e2e-limited:${LIMITED}:1`, `e2e-admin:${ADMIN} scope=admin`];

describe('gateway end to end with llama-server and the openai SDK', function () {
  this.timeout(60_000);
  let chatServer: LlamaServer;
  let embedServer: LlamaServer;
  let auth: ManagedProcess;
  let keysFile: string;
  let gateway: ManagedProcess;
  let redis: Redis;
  let dir: string;
  let db: TestDatabase;
  let client: OpenAI;
  let apiPort: number;
  let healthPort: number;
  const prefix = testRedisPrefix();
  let chatPort: number;
  let embedPort: number;

  const ping = async () => (await fetch(`http://127.0.0.1:${healthPort}/ping`)).status;

  before(async () => {
    chatPort = await freePort();
    embedPort = await freePort();
    apiPort = await freePort();
    healthPort = await freePort();
    const authPort = await freePort();
    db = await createTestDatabase({ migrate: true });
    dir = mkdtempSync(join(tmpdir(), 'gg-gateway-e2e-'));
    keysFile = join(dir, 'api_keys');
    writeFileSync(keysFile, [...KEYS, `e2e-revoked:${REVOKED}`, ''].join('\n'), { mode: 0o600 });
    auth = startAuthProcess({ port: authPort, redisPrefix: prefix, keysFile });
    const authUrl = `http://127.0.0.1:${authPort}`;
    await waitFor('auth /readyz', async () => (await fetch(`${authUrl}/readyz`)).status === 200, 15_000);
    const backendsFile = join(dir, 'backends.yaml');
    writeFileSync(
      backendsFile,
      [
        'models:',
        '  tiny: { aliases: [tiny-chat], tiers: [[chat]] }',
        '  tiny-embed: { tiers: [[embed]] }',
        '  offline: { tiers: [[dead]] }',
        'backends:',
        `  chat: { kind: llamacpp, url: "http://127.0.0.1:${chatPort}" }`,
        `  embed: { kind: llamacpp, url: "http://127.0.0.1:${embedPort}" }`,
        `  dead: { kind: llamacpp, url: "http://127.0.0.1:${await freePort()}" }`,
      ].join('\n'),
    );
    // The gateway starts before its backends exist, so /ping can be seen initializing.
    gateway = startGatewayProcess({
      port: apiPort,
      healthPort,
      redisPrefix: prefix,
      authUrl,
      backendsFile,
      env: { DATABASE_URL: db.url, INFERENCE_API_KEY: INFERENCE_KEY },
    });
    await waitFor('gateway /ping', async () => (await ping()) > 0, 15_000);
    redis = new Redis(testSettings.TEST_REDIS_URL);
    client = new OpenAI({ apiKey: USER, baseURL: `http://127.0.0.1:${apiPort}/v1`, maxRetries: 0 });
  });

  after(async () => {
    if (gateway) await stopProcess(gateway);
    await chatServer?.stop();
    await embedServer?.stop();
    if (auth) await stopProcess(auth);
    redis?.disconnect();
    await deleteRedisPrefix(prefix);
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function usageEvent(requestId: string): Promise<UsageEvent> {
    return waitFor(`usage event ${requestId}`, async () => {
      const entries = await redis.xrange(redisKey(prefix, USAGE_STREAM), '-', '+');
      return entries.map(([, f]) => JSON.parse(f[1]!) as UsageEvent).find((e) => e.requestId === requestId);
    });
  }

  async function direct(
    path: string,
    body: object,
  ): Promise<{ usage: { prompt_tokens: number; completion_tokens?: number } }> {
    const res = await fetch(`${chatServer.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${INFERENCE_KEY}` },
      body: JSON.stringify(body),
    });
    return (await res.json()) as { usage: { prompt_tokens: number; completion_tokens?: number } };
  }

  it('/ping answers 204 while no backend is up, then 200 once one is', async () => {
    assert.equal(await ping(), 204);
    chatServer = await LlamaServer.start({ apiKey: INFERENCE_KEY, port: chatPort, ctxSize: 32768 });
    embedServer = await LlamaServer.start({
      apiKey: INFERENCE_KEY,
      port: embedPort,
      extraArgs: ['--embeddings', '--pooling', 'mean'],
    });
    await waitFor('/ping 200', async () => (await ping()) === 200, 10_000, 50);
  });

  it('serves chat through the SDK and records usage equal to llama.cpp usage', async () => {
    const params = {
      model: 'tiny',
      messages: [{ role: 'user' as const, content: 'hello there' }],
      max_tokens: 8,
      temperature: 0,
    };
    const { data, response } = await client.chat.completions.create(params).withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.usage?.completion_tokens, 8);
    const event = await usageEvent(response.headers.get('x-request-id')!);
    assert.equal(event.promptTokens, data.usage?.prompt_tokens);
    assert.equal(event.completionTokens, data.usage?.completion_tokens);
    assert.equal(event.usageSource, 'upstream');
    assert.equal(event.model, 'tiny');
    assert.equal(event.backend, 'chat');
  });

  it('streams the same text as the non-streamed answer at temperature 0, with no usage chunk unless asked', async () => {
    const params = {
      model: 'tiny-chat',
      messages: [{ role: 'user' as const, content: 'stream me' }],
      max_tokens: 24,
      temperature: 0,
    };
    const whole = await client.chat.completions.create(params);
    const { data: stream, response } = await client.chat.completions.create({ ...params, stream: true }).withResponse();
    let text = '';
    let usageChunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usageChunks += 1;
    }
    assert.equal(text, whole.choices[0]!.message.content);
    assert.equal(usageChunks, 0);
    const event = await usageEvent(response.headers.get('x-request-id')!);
    assert.equal(event.stream, true);
    assert.equal(event.promptTokens, whole.usage?.prompt_tokens);
    assert.equal(event.completionTokens, whole.usage?.completion_tokens);
    assert.equal(typeof event.ttftMs, 'number');
  });

  it('keeps the usage chunk when the stream asks for it, and the event matches it', async () => {
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'tiny',
        messages: [{ role: 'user', content: 'count' }],
        max_tokens: 6,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    const usages = [];
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
    assert.equal(usages.length, 1);
    const event = await usageEvent(response.headers.get('x-request-id')!);
    assert.equal(event.promptTokens, usages[0]!.prompt_tokens);
    assert.equal(event.completionTokens, usages[0]!.completion_tokens);
  });

  it('delivers multi-byte UTF-8 characters intact through a stream', async () => {
    const stream = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'say it' }],
      max_tokens: 30,
      temperature: 0,
      stream: true,
      // llama.cpp's grammar forces the text, so it is made of byte tokens split inside characters.
      grammar: 'root ::= "é日本🙂ü"',
    } as OpenAI.ChatCompletionCreateParamsStreaming);
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'é日本🙂ü');
  });

  it('serves completions with usage equal to llama.cpp usage, streamed or not', async () => {
    const params = { model: 'tiny', prompt: 'once upon', max_tokens: 5, temperature: 0 };
    const { data, response } = await client.completions.create(params).withResponse();
    const expected = await direct('/v1/completions', params);
    assert.equal(data.usage?.prompt_tokens, expected.usage.prompt_tokens);
    const event = await usageEvent(response.headers.get('x-request-id')!);
    assert.equal(event.promptTokens, expected.usage.prompt_tokens);
    assert.equal(event.completionTokens, expected.usage.completion_tokens);
    assert.equal(event.route, 'completions');

    const { data: stream, response: streamed } = await client.completions
      .create({ ...params, stream: true })
      .withResponse();
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      assert.equal(chunk.usage ?? undefined, undefined, 'no usage in a stream that did not ask');
    }
    assert.equal(text, data.choices[0]!.text);
    const streamEvent = await usageEvent(streamed.headers.get('x-request-id')!);
    assert.equal(streamEvent.completionTokens, expected.usage.completion_tokens);
  });

  it('serves embeddings from the embeddings backend with usage equal to llama.cpp usage', async () => {
    const { data, response } = await client.embeddings
      .create({ model: 'tiny-embed', input: ['one', 'two words'] })
      .withResponse();
    assert.equal(data.data.length, 2);
    assert.equal(data.data[0]!.embedding.length, 64);
    const event = await usageEvent(response.headers.get('x-request-id')!);
    assert.equal(event.backend, 'embed');
    assert.equal(event.promptTokens, data.usage.prompt_tokens);
    assert.equal(event.completionTokens, 0);
  });

  it('lists the configured models and aliases', async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    assert.deepEqual(ids.sort(), ['offline', 'tiny', 'tiny-chat', 'tiny-embed']);
    assert.equal((await client.models.retrieve('tiny-chat')).id, 'tiny-chat');
  });

  it('answers errors in the OpenAI shape the SDK understands', async () => {
    const bad = new OpenAI({ apiKey: 'sk-wrong', baseURL: `http://127.0.0.1:${apiPort}/v1`, maxRetries: 0 });
    await assert.rejects(bad.models.list(), (err: InstanceType<typeof OpenAI.AuthenticationError>) => {
      assert.ok(err instanceof OpenAI.AuthenticationError);
      assert.equal(err.code, 'invalid_api_key');
      assert.ok(err.requestID);
      return true;
    });
    await assert.rejects(
      client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }),
      (err: InstanceType<typeof OpenAI.NotFoundError>) =>
        err instanceof OpenAI.NotFoundError && err.code === 'model_not_found',
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'offline', messages: [{ role: 'user', content: 'x' }] }),
      (err: InstanceType<typeof OpenAI.InternalServerError>) => {
        assert.equal(err.status, 503);
        assert.equal(err.code, 'backend_unavailable');
        assert.match(err.headers.get('retry-after') ?? '', /^\d+$/);
        assert.ok(err.requestID);
        return true;
      },
    );
    const limited = new OpenAI({ apiKey: LIMITED, baseURL: `http://127.0.0.1:${apiPort}/v1`, maxRetries: 0 });
    await limited.models.list();
    await assert.rejects(limited.models.list(), (err: InstanceType<typeof OpenAI.RateLimitError>) => {
      assert.ok(err instanceof OpenAI.RateLimitError);
      assert.match(err.headers.get('retry-after') ?? '', /^\d+$/);
      return true;
    });
  });

  it('reloads the keys through the admin route, and refuses it to a key without the admin scope', async () => {
    const reload = (key: string) =>
      fetch(`http://127.0.0.1:${apiPort}/admin/v1/keys/reload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}` },
      });
    const refused = await reload(USER);
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'insufficient_scope');
    const done = await reload(ADMIN);
    assert.equal(done.status, 200);
    assert.deepEqual(await done.json(), { keys: 4, errors: [] });
  });

  it('stops serving a key within one second of its removal from the keys file', async () => {
    const revoked = new OpenAI({ apiKey: REVOKED, baseURL: `http://127.0.0.1:${apiPort}/v1`, maxRetries: 0 });
    await revoked.models.list();
    writeFileSync(keysFile, [...KEYS, ''].join('\n'));
    const removedAt = Date.now();
    await waitFor(
      'revoked key refused',
      async () => {
        try {
          await revoked.models.list();
          return false;
        } catch (err) {
          return err instanceof OpenAI.AuthenticationError;
        }
      },
      1000,
      50,
    );
    assert.ok(Date.now() - removedAt <= 1000);
  });

  it('frees the llama.cpp slot when the client aborts a stream, and records the abort', async () => {
    const slots = async () =>
      (await (
        await fetch(`${chatServer.url}/slots`, { headers: { authorization: `Bearer ${INFERENCE_KEY}` } })
      ).json()) as { is_processing: boolean }[];
    // Left alone, this request runs until the slot's context is full (about 2000 tokens).
    const predicted = async () => {
      const text = await (
        await fetch(`${chatServer.url}/metrics`, { headers: { authorization: `Bearer ${INFERENCE_KEY}` } })
      ).text();
      return Number(/^llamacpp:tokens_predicted_total (\d+)/m.exec(text)?.[1]);
    };
    const predictedBefore = await predicted();
    const controller = new AbortController();
    const { data: stream, response } = await client.chat.completions
      .create(
        { model: 'tiny', messages: [{ role: 'user', content: 'go on forever' }], max_tokens: 30_000, stream: true },
        { signal: controller.signal },
      )
      .withResponse();
    let chunks = 0;
    // The SDK ends the iteration quietly on abort.
    for await (const _chunk of stream) {
      chunks += 1;
      if (chunks === 5) {
        assert.ok(
          (await slots()).some((s) => s.is_processing),
          'the slot is busy while streaming',
        );
        controller.abort();
      }
    }
    await waitFor('slot freed', async () => (await slots()).every((s) => !s.is_processing), 2000, 20);
    const generated = (await predicted()) - predictedBefore;
    assert.ok(generated < 1000, `llama.cpp stopped early (${generated} tokens generated)`);
    const event = await usageEvent(response.headers.get('x-request-id')!);
    assert.equal(event.status, 499);
    assert.equal(event.errorCode, 'client_aborted');
    assert.ok(event.completionTokens < 30_000);
  });
  it('serves the admin usage, models and pull routes to admin keys only', async () => {
    const admin = (path: string, init: RequestInit = {}, key = ADMIN) =>
      fetch(`http://127.0.0.1:${apiPort}/admin/v1${path}`, {
        ...init,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      });
    const usage = await admin('/usage');
    assert.equal(usage.status, 200);
    assert.equal(((await usage.json()) as { object: string }).object, 'usage');
    const models = await admin('/models');
    assert.equal(models.status, 200);
    assert.equal((await admin('/models', {}, USER)).status, 403);

    const bad = await admin('/models/pull', {
      method: 'POST',
      body: JSON.stringify({ source: { repo: '../x', file: 'a.gguf' } }),
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'invalid_pull');
    const source = { repo: 'org/tiny', file: 'tiny.gguf' };
    const pull = await admin('/models/pull', { method: 'POST', body: JSON.stringify({ source }) });
    assert.equal(pull.status, 202);
    const { jobId } = (await pull.json()) as { jobId: string };
    const job = (await (await admin(`/jobs/${jobId}`)).json()) as { id: string; state: string };
    assert.equal(job.id, jobId);
    assert.equal((await admin(`/jobs/${jobId}`, { method: 'DELETE' })).status < 300, true);
  });
});
