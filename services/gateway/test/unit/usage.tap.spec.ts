import assert from 'node:assert/strict';
import { JsonBodyTap } from '../../src/inference/json-body.tap.js';
import { SseUsageTap } from '../../src/inference/usage.tap.js';
import { combineUsage } from '../../src/inference/usage-readers.js';

const event = (json: object) => `data: ${JSON.stringify(json)}\n\n`;
const content = (text: string) => event({ choices: [{ index: 0, delta: { content: text } }] });
const usageOnly = event({
  choices: [],
  usage: { prompt_tokens: 3, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 1 } },
});

const usageOf = (tap: SseUsageTap) => combineUsage('openai', tap.reports);

function run(tap: SseUsageTap, chunks: string[]): string {
  const out = chunks.map((c) => tap.push(Buffer.from(c)));
  out.push(tap.flush());
  return Buffer.concat(out).toString('utf8');
}

describe('usage tap', () => {
  it('reads usage from a stream and passes every byte through when the client asked for usage', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: false, model: null });
    const stream = content('a') + content('b') + usageOnly + 'data: [DONE]\n\n';
    const out = run(tap, [stream.slice(0, 10), stream.slice(10, 95), stream.slice(95)]);
    assert.equal(out, stream);
    assert.deepEqual(usageOf(tap), { promptTokens: 3, completionTokens: 2, cachedTokens: 1 });
    assert.equal(tap.contentEvents, 2);
  });

  it('drops a usage-only chunk the client did not ask for, even when it arrives in pieces', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: true, model: null });
    const stream = content('a') + usageOnly + 'data: [DONE]\n\n';
    const cut = content('a').length + 20;
    const out = run(tap, [stream.slice(0, cut), stream.slice(cut)]);
    assert.equal(out, content('a') + 'data: [DONE]\n\n');
    assert.equal(usageOf(tap)?.completionTokens, 2);
  });

  it('removes the usage field from a final chunk that also carries choices', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: true, model: null });
    const last = {
      choices: [{ index: 0, text: '', finish_reason: 'length' }],
      usage: { prompt_tokens: 4, completion_tokens: 3 },
    };
    const out = run(tap, [event(last) + 'data: [DONE]\n\n']);
    assert.equal(out, event({ choices: last.choices }) + 'data: [DONE]\n\n');
    assert.equal(usageOf(tap)?.promptTokens, 4);
  });

  it('forwards each complete event at once and never splits a multi-byte character', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: true, model: null });
    const bytes = Buffer.from(content('日本'));
    const cut = bytes.indexOf(Buffer.from('本')) + 1;
    assert.equal(tap.push(bytes.subarray(0, cut)).length, 0);
    assert.equal(tap.push(bytes.subarray(cut)).toString('utf8'), content('日本'));
  });

  it('understands CRLF event boundaries', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: true, model: null });
    const out = run(tap, [
      'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\r\n\r\ndata: [DONE]\r\n\r\n',
    ]);
    assert.equal(out, 'data: [DONE]\r\n\r\n');
    assert.equal(usageOf(tap)?.promptTokens, 1);
  });

  it('reads usage from a JSON body split across chunks', () => {
    const tap = new JsonBodyTap({ dialect: 'openai', model: null });
    const body = JSON.stringify({ data: [], usage: { prompt_tokens: 11, total_tokens: 11 } });
    tap.push(Buffer.from(body.slice(0, 7)));
    tap.push(Buffer.from(body.slice(7)));
    assert.deepEqual(combineUsage('openai', tap.usage ? [tap.usage] : []), {
      promptTokens: 11,
      completionTokens: 0,
      cachedTokens: 0,
    });
  });

  it('passes an 8 MB event without a blank line through in well under a second, unread, and still meters the rest', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: true, model: 'tiny' });
    const huge = Buffer.alloc(8 * 1024 * 1024, 'x');
    huge.write('data: {"choices":[{"delta":{"content":"', 0);
    const started = performance.now();
    let passed = 0;
    let heldBack = 0;
    for (let at = 0; at < huge.length; at += 16 * 1024) {
      const out = tap.push(huge.subarray(at, at + 16 * 1024));
      passed += out.length;
      heldBack = Math.max(heldBack, at + 16 * 1024 - passed);
    }
    passed += tap.push(Buffer.from('"}}]}\n\n' + usageOnly + 'data: [DONE]\n\n')).length;
    const elapsedMs = performance.now() - started;
    assert.ok(elapsedMs < 500, `took ${elapsedMs.toFixed(0)} ms`);
    // Never more than the cap (and one chunk) waits in the gateway.
    assert.ok(heldBack <= 1024 * 1024 + 16 * 1024, `held ${heldBack} bytes`);
    assert.equal(passed, huge.length + '"}}]}\n\n'.length + 'data: [DONE]\n\n'.length);
    assert.equal(tap.unreadEvents, 1);
    assert.deepEqual(usageOf(tap), { promptTokens: 3, completionTokens: 2, cachedTokens: 1 });
  });

  it('finds event ends in many small events of one chunk in linear time', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: false, model: null });
    const stream = ':\r\n\r\n'.repeat(50_000);
    const started = performance.now();
    const out = tap.push(Buffer.from(stream));
    assert.ok(performance.now() - started < 1000);
    assert.equal(out.length, stream.length);
  });

  it('names the model the client asked for in every event, also inside Anthropic and Responses events', () => {
    const tap = new SseUsageTap({ dialect: 'anthropic', stripUsage: false, model: 'claude-local' });
    const start = {
      type: 'message_start',
      message: { id: 'm', model: '/models/tiny.gguf', usage: { input_tokens: 5, cache_read_input_tokens: 2 } },
    };
    const delta = { type: 'message_delta', delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 7 } };
    const stream = `event: message_start\ndata: ${JSON.stringify(start)}\n\n: ping\n\nevent: message_delta\ndata: ${JSON.stringify(delta)}\n\n`;
    const out = run(tap, [stream.slice(0, 30), stream.slice(30)]);
    assert.ok(!out.includes('/models/tiny.gguf'));
    assert.ok(
      out.startsWith('event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"claude-local"'),
    );
    assert.ok(out.includes(': ping\n\n'), 'a keep-alive comment passes through');
    assert.equal(tap.contentEvents, 0, 'a keep-alive is not content');
    assert.deepEqual(combineUsage('anthropic', tap.reports), { promptTokens: 7, completionTokens: 7, cachedTokens: 2 });

    const responses = new SseUsageTap({ dialect: 'responses', stripUsage: false, model: 'tiny' });
    const completed = {
      type: 'response.completed',
      response: { model: '/models/x.gguf', usage: { input_tokens: 9, output_tokens: 4 } },
    };
    const text = run(responses, [`event: response.completed\ndata: ${JSON.stringify(completed)}\n\n`]);
    assert.ok(text.includes('"model":"tiny"') && !text.includes('x.gguf'));
    assert.deepEqual(combineUsage('responses', responses.reports), {
      promptTokens: 9,
      completionTokens: 4,
      cachedTokens: 0,
    });
  });

  it("passes an event that already names the client's model as it came, and renames one that names it twice", () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: false, model: 'tiny' });
    const same = `data: {"model":"tiny","choices":[{"delta":{"content":"say \\"model\\""}}]}\n\n`;
    const twice = event({ model: 'tiny', message: { model: 'backend-name' } });
    const out = run(tap, [same, twice]);
    assert.equal(out, same + event({ model: 'tiny', message: { model: 'tiny' } }));
  });

  it('adds up one usage chunk per generated sequence of a stream', () => {
    const tap = new SseUsageTap({ dialect: 'openai', stripUsage: true, model: null });
    const one = (completion: number) =>
      event({ choices: [], usage: { prompt_tokens: 5, completion_tokens: completion } });
    run(tap, [content('a') + one(8) + one(6) + 'data: [DONE]\n\n']);
    assert.deepEqual(usageOf(tap), { promptTokens: 10, completionTokens: 14, cachedTokens: 0 });
  });
});

describe('JSON body tap', () => {
  const body = JSON.stringify({
    id: 'x',
    model: '/models/tiny-llama.gguf',
    choices: [{ index: 0, message: { content: 'a "model": "b" \\ {[' }, finish_reason: 'length' }],
    usage: { prompt_tokens: 12, completion_tokens: 8 },
    extra: { model: 'nested stays' },
  });

  it('rewrites the top-level model and reads usage, however the body is cut into chunks', () => {
    const expected = JSON.stringify({ ...JSON.parse(body), model: 'tiny' });
    for (let cut = 1; cut < body.length; cut++) {
      for (const step of [1, 7]) {
        const tap = new JsonBodyTap({ dialect: 'openai', model: 'tiny', keepChoicesBytes: 1024 });
        const pieces = [body.slice(0, cut), ...(body.slice(cut).match(new RegExp(`[\\s\\S]{1,${step}}`, 'g')) ?? [])];
        const out = Buffer.concat(pieces.map((p) => tap.push(Buffer.from(p)))).toString('utf8');
        assert.equal(out, expected, `cut at ${cut}, step ${step}`);
        assert.deepEqual(tap.usage, { promptTokens: 12, completionTokens: 8 });
        assert.equal(tap.choices?.length, 1);
      }
    }
  });

  it('reads usage after 32 MB of embeddings without holding the body', () => {
    const tap = new JsonBodyTap({ dialect: 'openai', model: 'embed' });
    const head = Buffer.from('{"object":"list","model":"/m.gguf","data":[{"embedding":[');
    const row = Buffer.from('0.125,'.repeat(10_000));
    const started = performance.now();
    let out = tap.push(head).length;
    for (let i = 0; i < (32 * 1024 * 1024) / row.length; i++) out += tap.push(row).length;
    out += tap.push(Buffer.from('0]}],"usage":{"prompt_tokens":4096,"total_tokens":4096}}')).length;
    assert.ok(performance.now() - started < 2000);
    assert.ok(out > 32 * 1024 * 1024);
    assert.deepEqual(tap.usage, { promptTokens: 4096, completionTokens: 0 });
  });

  it('reads Anthropic usage, counting cache reads in the prompt', () => {
    const tap = new JsonBodyTap({ dialect: 'anthropic', model: 'claude' });
    const out = tap.push(
      Buffer.from(
        JSON.stringify({
          type: 'message',
          model: '/m.gguf',
          content: [{ type: 'tool_use', input: { model: 'kept' } }],
          usage: { input_tokens: 3, output_tokens: 5, cache_read_input_tokens: 10 },
        }),
      ),
    );
    assert.equal(JSON.parse(out.toString()).model, 'claude');
    assert.equal(JSON.parse(out.toString()).content[0].input.model, 'kept');
    assert.deepEqual(tap.usage, { promptTokens: 13, completionTokens: 5, cachedTokens: 10 });
  });
});
