import assert from 'node:assert/strict';
import { BackendsFileError, parseBackendsFile } from '../../src/backends-file.js';

describe('backends file', () => {
  it('names every problem at once: unknown backends, duplicate names, bad kinds', () => {
    const bad = `
models:
  a: { aliases: [b], tiers: [[missing]] }
  b: { tiers: [[x]] }
backends:
  x: { kind: ftp, url: "http://x" }
`;
    assert.throws(
      () => parseBackendsFile(bad),
      (err: BackendsFileError) =>
        err instanceof BackendsFileError && err.problems.some((p) => p.includes('backends.x.kind')),
    );
    const crossed = `
models:
  a: { aliases: [b], tiers: [[missing]] }
  b: { tiers: [[x]] }
backends:
  x: { kind: llamacpp, url: "http://x" }
`;
    assert.throws(
      () => parseBackendsFile(crossed),
      (err: BackendsFileError) =>
        err.problems.some((p) => p.includes('unknown backend "missing"')) &&
        err.problems.some((p) => p.includes('"b" is already used')),
    );
  });

  it('names the line of each problem, unknown fields and duplicate keys included', () => {
    const text = [
      'models:',
      '  a: { tiers: [[x]] }',
      'backends:',
      '  x: { kind: llamacpp, url: "http://x", maxInflight: 4 }',
      '  y: { kind: openai, url: "http://y", maxInFlight: 0 }',
    ].join('\n');
    assert.throws(
      () => parseBackendsFile(text),
      (err: BackendsFileError) =>
        err.problems.includes('line 4: backends.x: unknown field "maxInflight"') &&
        err.problems.some((p) => p.startsWith('line 5: backends.y.maxInFlight:')),
    );
    assert.throws(
      () =>
        parseBackendsFile(
          'models:\n  a: { tiers: [[x]] }\nbackends:\n  x: { kind: llamacpp, url: "http://x" }\n  x: { kind: llamacpp, url: "http://y" }\n',
        ),
      /Map keys must be unique/,
    );
  });

  it('reads the optional routing fields of a backend', () => {
    const file = parseBackendsFile(
      'models: { m: { tiers: [[c]] } }\nbackends:\n  c: { kind: openai, url: "https://llm.chutes.ai", maxInFlight: 8, utilizationUrl: "https://api.chutes.ai/chutes/utilization" }\n',
    );
    assert.equal(file.backends[0]!.maxInFlight, 8);
    assert.equal(file.backends[0]!.utilizationUrl, 'https://api.chutes.ai/chutes/utilization');
  });

  it('rejects text that is not YAML', () => {
    assert.throws(() => parseBackendsFile('models: [unclosed'), /not valid YAML/);
  });
});
