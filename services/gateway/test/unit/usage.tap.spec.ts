import assert from 'node:assert/strict';
import { JsonUsageTap, SseUsageTap } from '../../src/inference/usage.tap.js';

const event = (json: object) => `data: ${JSON.stringify(json)}\n\n`;
const content = (text: string) => event({ choices: [{ index: 0, delta: { content: text } }] });
const usageOnly = event({
  choices: [],
  usage: { prompt_tokens: 3, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 1 } },
});

function run(tap: SseUsageTap, chunks: string[]): string {
  const out = chunks.map((c) => tap.push(Buffer.from(c)));
  out.push(tap.flush());
  return Buffer.concat(out).toString('utf8');
}

describe('usage tap', () => {
  it('reads usage from a stream and passes every byte through when the client asked for usage', () => {
    const tap = new SseUsageTap(false);
    const stream = content('a') + content('b') + usageOnly + 'data: [DONE]\n\n';
    const out = run(tap, [stream.slice(0, 10), stream.slice(10, 95), stream.slice(95)]);
    assert.equal(out, stream);
    assert.deepEqual(tap.usage, { promptTokens: 3, completionTokens: 2, cachedTokens: 1 });
    assert.equal(tap.contentEvents, 2);
  });

  it('drops a usage-only chunk the client did not ask for, even when it arrives in pieces', () => {
    const tap = new SseUsageTap(true);
    const stream = content('a') + usageOnly + 'data: [DONE]\n\n';
    const cut = content('a').length + 20;
    const out = run(tap, [stream.slice(0, cut), stream.slice(cut)]);
    assert.equal(out, content('a') + 'data: [DONE]\n\n');
    assert.equal(tap.usage?.completionTokens, 2);
  });

  it('removes the usage field from a final chunk that also carries choices', () => {
    const tap = new SseUsageTap(true);
    const last = {
      choices: [{ index: 0, text: '', finish_reason: 'length' }],
      usage: { prompt_tokens: 4, completion_tokens: 3 },
    };
    const out = run(tap, [event(last) + 'data: [DONE]\n\n']);
    assert.equal(out, event({ choices: last.choices }) + 'data: [DONE]\n\n');
    assert.equal(tap.usage?.promptTokens, 4);
  });

  it('forwards each complete event at once and never splits a multi-byte character', () => {
    const tap = new SseUsageTap(true);
    const bytes = Buffer.from(content('日本'));
    const cut = bytes.indexOf(Buffer.from('本')) + 1;
    assert.equal(tap.push(bytes.subarray(0, cut)).length, 0);
    assert.equal(tap.push(bytes.subarray(cut)).toString('utf8'), content('日本'));
  });

  it('understands CRLF event boundaries', () => {
    const tap = new SseUsageTap(true);
    const out = run(tap, [
      'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\r\n\r\ndata: [DONE]\r\n\r\n',
    ]);
    assert.equal(out, 'data: [DONE]\r\n\r\n');
    assert.equal(tap.usage?.promptTokens, 1);
  });

  it('reads usage from a JSON body split across chunks', () => {
    const tap = new JsonUsageTap();
    const body = JSON.stringify({ data: [], usage: { prompt_tokens: 11, total_tokens: 11 } });
    tap.push(Buffer.from(body.slice(0, 7)));
    tap.push(Buffer.from(body.slice(7)));
    assert.deepEqual(tap.usage, { promptTokens: 11, completionTokens: 0, cachedTokens: 0 });
  });
});
