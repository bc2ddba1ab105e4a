import assert from 'node:assert/strict';
import { upstreamPayload, type PayloadSource } from '../../src/inference/upstream-payload.js';

function source(text: string, asksUsage = false, topLevelMembers?: number): PayloadSource {
  const client = JSON.parse(text) as Record<string, unknown>;
  const upstream: Record<string, unknown> = { ...client };
  if (asksUsage) upstream.stream_options = { ...(client.stream_options as object | undefined), include_usage: true };
  const members = topLevelMembers ?? Object.keys(client).length;
  return { client, raw: { bytes: Buffer.from(text), topLevelMembers: members }, upstream, asksUsage };
}

describe('the body a backend gets', () => {
  it("forwards the client's own bytes when the backend reads the client's model name", () => {
    const text =
      '{ "model": "tiny", "messages": [{"role":"user","content":"h\\u00e9"}], "seed": 12345678901234567890 }';
    const sent = upstreamPayload(source(text), 'tiny');
    assert.equal(sent.toString(), text, 'not re-serialized: spacing, escapes and a large integer stay as sent');
  });

  it('writes the body anew for a backend that names the model otherwise', () => {
    const sent = upstreamPayload(source('{"model":"tiny","messages":[]}'), 'org/tiny-q4');
    assert.deepEqual(JSON.parse(sent.toString()), { model: 'org/tiny-q4', messages: [] });
  });

  it('never forwards a body whose top-level key repeats: the backend reads what the gateway authorized', () => {
    const text = '{"model":"forbidden","model":"tiny","messages":[]}';
    const sent = upstreamPayload(source(text, false, 3), 'tiny');
    assert.equal(sent.toString(), '{"model":"tiny","messages":[]}');
  });

  it("asks a stream for its usage in front of the client's bytes, or anew when the client set options", () => {
    const plain = upstreamPayload(source('{"model":"tiny","stream":true}', true), 'tiny');
    assert.equal(plain.toString(), '{"stream_options":{"include_usage":true},"model":"tiny","stream":true}');
    const withOptions = upstreamPayload(
      source('{"model":"tiny","stream":true,"stream_options":{"continuous_usage_stats":true}}', true),
      'tiny',
    );
    assert.deepEqual(JSON.parse(withOptions.toString()).stream_options, {
      continuous_usage_stats: true,
      include_usage: true,
    });
  });

  it('writes the body anew when its bytes were not kept (not UTF-8, or with a byte-order mark)', () => {
    const client = { model: 'tiny', messages: [] };
    const sent = upstreamPayload({ client, raw: undefined, upstream: client, asksUsage: false }, 'tiny');
    assert.equal(sent.toString(), '{"model":"tiny","messages":[]}');
  });
});
