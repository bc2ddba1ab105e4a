import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TINY_LLAMA } from '@gguf-gateway/gguf';
import { LlamaServer } from '@gguf-gateway/testkit';

// The tiny model written by our GGUF writer, served by the llama-server built from node-llama-cpp's bundle.
describe('tiny model in a real llama-server', function () {
  this.timeout(15 * 60_000); // the first run may build llama-server
  const apiKey = randomBytes(16).toString('hex');
  let chat: LlamaServer;
  let embeddings: LlamaServer;
  const auth = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };

  before(async () => {
    chat = await LlamaServer.start({ apiKey });
    embeddings = await LlamaServer.start({ apiKey, extraArgs: ['--embeddings', '--pooling', 'mean'] });
  });

  after(async () => {
    await chat?.stop();
    await embeddings?.stop();
  });

  it('answers /health with 200', async () => {
    const res = await fetch(`${chat.url}/health`);
    assert.equal(res.status, 200);
  });

  it('refuses a request without its API key', async () => {
    const res = await fetch(`${chat.url}/v1/models`);
    assert.equal(res.status, 401);
  });

  it('returns usage with a chat completion', async () => {
    const res = await fetch(`${chat.url}/v1/chat/completions`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hello' }], max_tokens: 8, temperature: 0 }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: Record<string, number>; choices: { message: { content: string } }[] };
    assert.ok((body.usage.prompt_tokens ?? 0) > 0);
    assert.equal(body.usage.completion_tokens, 8);
    assert.equal(typeof body.choices[0]?.message.content, 'string');
  });

  it('streams a completion that ends with data: [DONE]', async () => {
    const res = await fetch(`${chat.url}/v1/chat/completions`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 8,
        stream: true,
        temperature: 0, // greedy: the same 8 tokens every run
      }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text();
    const events = text.split('\n\n').filter(Boolean);
    assert.ok(events.length >= 3, text);
    assert.equal(events.at(-1)?.trim(), 'data: [DONE]', text);
  });

  it('returns an embedding of the model size with --embeddings', async () => {
    const res = await fetch(`${embeddings.url}/v1/embeddings`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ input: 'hello world' }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { data: { embedding: number[] }[] };
    assert.equal(body.data[0]?.embedding.length, TINY_LLAMA.embeddingLength);
  });
});
