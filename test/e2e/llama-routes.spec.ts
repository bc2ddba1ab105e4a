// llama-server's own routes (rerank, tokenize, detokenize, apply-template, infill), exact metering of
// several outputs per request, and the seed project's probes, through the real gateway in front of
// real llama-servers with the tiny model (one of them in rerank mode).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { ApiStack } from './support/api-stack.js';

const USER = 'sk-llama-user-0123456789';
const RERANK_ONLY = 'sk-llama-rerank-0123456789';

/** The fields of an answer that differ between two runs of the same request. */
function stable(answer: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, created: _created, model: _model, timings: _timings, system_fingerprint: _fp, ...rest } = answer;
  return rest;
}

describe("llama-server's own routes and exact metering through the gateway", function () {
  this.timeout(120_000);
  let stack: ApiStack;
  let openai: OpenAI;
  let dir: string;

  before(async () => {
    // The tiny model with fill-in-the-middle tokens: llama-server serves /infill only for such a model.
    dir = mkdtempSync(join(tmpdir(), 'gg-fim-model-'));
    const fimModel = join(dir, 'tiny-fim.gguf');
    await writeTinyLlama(fimModel, 42, { fim: true });
    stack = await ApiStack.start({
      keys: [`llama-user:${USER}`, `llama-rerank:${RERANK_ONLY} models=tiny-rerank`],
      servers: {
        chat: { model: fimModel, slots: 4, ctxSize: 8192 },
        rerank: { slots: 1, extraArgs: ['--rerank'] },
      },
      models: ['tiny: { tiers: [[chat]] }', 'tiny-rerank: { tiers: [[rerank]] }', 'remote: { tiers: [[provider]] }'],
      // llama-server speaks the OpenAI API: here it stands in for a remote provider, which has no rerank.
      extraBackends: (servers) => [`provider: { kind: openai, url: "${servers.chat!.url}/v1" }`],
    });
    openai = new OpenAI({ apiKey: USER, baseURL: `${stack.url}/v1`, maxRetries: 0 });
  });

  after(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const post = (path: string, body: object, key: string | null = USER) =>
    fetch(`${stack.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify(body),
    });

  it('answers /ping and /health on the API port without a key and without calling a backend', async () => {
    const ping = await fetch(`${stack.url}/ping`);
    assert.equal(ping.status, 200);
    const health = await fetch(`${stack.url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ready', ready: true });
  });

  it('reranks documents against a backend in rerank mode, metered by its prompt tokens', async () => {
    const res = await post('/v1/rerank', { model: 'tiny-rerank', query: 'hello', documents: ['the world', 'a token'] });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      model: string;
      results: { index: number; relevance_score: number }[];
      usage: { prompt_tokens: number };
    };
    assert.equal(body.model, 'tiny-rerank');
    assert.deepEqual(body.results.map((r) => r.index).sort(), [0, 1]);
    const event = await stack.usageEvent(res.headers.get('x-request-id')!);
    assert.equal(event.route, 'rerank');
    assert.equal(event.promptTokens, body.usage.prompt_tokens);
    assert.ok(event.promptTokens > 0);
    // The aliases reach the same route.
    assert.equal((await post('/rerank', { model: 'tiny-rerank', query: 'q', documents: ['d'] })).status, 200);
    assert.equal((await post('/v1/reranking', { model: 'tiny-rerank', query: 'q', documents: ['d'] })).status, 200);
  });

  it('round-trips text through /tokenize and /detokenize', async () => {
    const text = 'hello the world';
    const tokenized = await post('/tokenize', { model: 'tiny', content: text });
    assert.equal(tokenized.status, 200);
    const { tokens } = (await tokenized.json()) as { tokens: number[] };
    assert.ok(tokens.length > 0);
    const detokenized = await post('/detokenize', { model: 'tiny', tokens });
    assert.equal(((await detokenized.json()) as { content: string }).content.trim(), text);
    const event = await stack.usageEvent(tokenized.headers.get('x-request-id')!);
    assert.equal(event.route, 'tokenize');
    assert.equal(event.status, 200);
  });

  it('applies the chat template and counts chat input tokens', async () => {
    const messages = [{ role: 'user', content: 'hi' }];
    const applied = (await (await post('/apply-template', { model: 'tiny', messages })).json()) as { prompt: string };
    assert.match(applied.prompt, /<\|im_start\|>user\nhi<\|im_end\|>/);
    const counted = await post('/v1/chat/completions/input_tokens', { model: 'tiny', messages });
    assert.equal(counted.status, 200);
  });

  it('streams /infill through the gateway and meters the tokens llama-server reports', async () => {
    const res = await post('/infill', {
      model: 'tiny',
      input_prefix: 'def hello():\n    ',
      input_suffix: '\n    return 1\n',
      n_predict: 6,
      stream: true,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text();
    const events = text
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => JSON.parse(e.slice(6)) as { stop?: boolean; tokens_predicted?: number; tokens_evaluated?: number });
    const last = events.find((e) => e.stop === true)!;
    assert.ok(events.length > 1, 'streamed in several events');
    assert.ok(!text.includes('.gguf'), 'no server path in the stream');
    const event = await stack.usageEvent(res.headers.get('x-request-id')!);
    assert.equal(event.route, 'infill');
    assert.equal(event.completionTokens, last.tokens_predicted);
    assert.equal(event.promptTokens, last.tokens_evaluated);
  });

  it('refuses every llama-server route without a key', async () => {
    for (const [path, body] of [
      ['/v1/rerank', { model: 'tiny-rerank', query: 'q', documents: ['d'] }],
      ['/tokenize', { model: 'tiny', content: 'x' }],
      ['/detokenize', { model: 'tiny', tokens: [1] }],
      ['/apply-template', { model: 'tiny', messages: [{ role: 'user', content: 'x' }] }],
      ['/infill', { model: 'tiny', input_prefix: 'a', input_suffix: 'b' }],
    ] as const) {
      const res = await post(path, body, null);
      assert.equal(res.status, 401, path);
    }
  });

  it("applies a key's models= allow-list to the new routes", async () => {
    assert.equal(
      (await post('/v1/rerank', { model: 'tiny-rerank', query: 'q', documents: ['d'] }, RERANK_ONLY)).status,
      200,
    );
    const refused = await post('/tokenize', { model: 'tiny', content: 'x' }, RERANK_ONLY);
    assert.equal(refused.status, 403);
  });

  it('answers 404 naming the model and route when no backend of the model serves the route, without calling one', async () => {
    const res = await post('/v1/rerank', { model: 'remote', query: 'q', documents: ['d'] });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { error: { message: string; code: string } };
    assert.equal(body.error.code, 'route_not_supported');
    assert.match(body.error.message, /'remote'.*\/v1\/rerank/);
    assert.equal(res.headers.get('x-gateway-backend'), null);
    const messages = await post('/v1/messages', {
      model: 'remote',
      max_tokens: 1,
      messages: [{ role: 'user', content: 'x' }],
    });
    assert.equal(messages.status, 404);
    assert.equal(((await messages.json()) as { type: string }).type, 'error');
    // A usage event lands just after its answer (the publisher batches), and the previous test's may
    // land now: wait past a batch, then look for one of this model.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const remote = (await stack.usageEvents()).filter((e) => e.model === 'remote');
    assert.deepEqual(remote, [], 'no request reached a backend');
  });

  it('passes response_format, logprobs, n, stop and tools through unchanged and returns the answer as llama-server gave it', async () => {
    const params = {
      messages: [{ role: 'user' as const, content: 'answer' }],
      max_tokens: 6,
      temperature: 0,
      n: 2,
      stop: ['zzz'],
      logprobs: true,
      top_logprobs: 2,
      // Both runs evaluate the prompt afresh, so that they compute the same numbers.
      cache_prompt: false,
      tools: [
        {
          type: 'function' as const,
          function: { name: 'lookup', description: 'Look a word up', parameters: { type: 'object', properties: {} } },
        },
      ],
    };
    const through = await openai.chat.completions.create({ model: 'tiny', ...params });
    const direct = await stack.direct('chat', '/v1/chat/completions', params);
    assert.equal(through.model, 'tiny');
    assert.deepEqual(stable(through as unknown as Record<string, unknown>), stable(direct));

    // llama.cpp cannot build a JSON grammar for the tiny model's vocabulary: its refusal comes back as it gave it.
    const json = { ...params, response_format: { type: 'json_object' } };
    const refused = await post('/v1/chat/completions', { model: 'tiny', ...json });
    assert.equal(refused.status, 400);
    assert.deepEqual(await refused.json(), await stack.direct('chat', '/v1/chat/completions', json));
  });

  it('meters every choice of n: 2, streamed or not, as llama-server counts them', async () => {
    const params = { model: 'tiny', messages: [{ role: 'user' as const, content: 'two' }], max_tokens: 8, n: 2 };
    const { data, response } = await openai.chat.completions.create(params).withResponse();
    assert.equal(data.choices.length, 2);
    const event = await stack.usageEvent(response.headers.get('x-request-id')!);
    assert.equal(event.completionTokens, 16);
    assert.equal(event.promptTokens, data.usage?.prompt_tokens);

    // The stream carries llama.cpp's own count per choice: one usage chunk each.
    const { data: stream, response: streamed } = await openai.chat.completions
      .create({ ...params, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    const usages = [];
    for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
    const streamEvent = await stack.usageEvent(streamed.headers.get('x-request-id')!);
    assert.equal(
      streamEvent.completionTokens,
      usages.reduce((sum, u) => sum + u.completion_tokens, 0),
    );
    assert.equal(streamEvent.completionTokens, 16);
    assert.equal(streamEvent.promptTokens, data.usage?.prompt_tokens);
  });

  it('meters every prompt of a /v1/completions prompt array as llama-server counts them', async () => {
    const prompts = ['one', 'the second prompt', 'a third and longer prompt'];
    const perPrompt = await Promise.all(
      prompts.map(async (prompt) => {
        const answer = await stack.direct('chat', '/v1/completions', { prompt, max_tokens: 1 });
        return (answer.usage as { prompt_tokens: number }).prompt_tokens;
      }),
    );
    const { data, response } = await openai.completions
      .create({ model: 'tiny', prompt: prompts, max_tokens: 4 })
      .withResponse();
    assert.equal(data.choices.length, 3);
    const event = await stack.usageEvent(response.headers.get('x-request-id')!);
    assert.equal(
      event.promptTokens,
      perPrompt.reduce((a, b) => a + b, 0),
    );
    assert.equal(event.completionTokens, 12);

    const { data: stream, response: streamed } = await openai.completions
      .create({ model: 'tiny', prompt: prompts, max_tokens: 4, stream: true })
      .withResponse();
    for await (const _chunk of stream) {
      // drained
    }
    const streamEvent = await stack.usageEvent(streamed.headers.get('x-request-id')!);
    assert.equal(
      streamEvent.promptTokens,
      perPrompt.reduce((a, b) => a + b, 0),
    );
    assert.equal(streamEvent.completionTokens, 12);
  });
});
