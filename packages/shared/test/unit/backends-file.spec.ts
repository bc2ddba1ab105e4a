import assert from 'node:assert/strict';
import { BackendsFileError, localModelPath, localModelPreset, parseBackendsFile } from '../../src/backends-file.js';

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

  it('accepts a file that names no model: with models on demand they all come from MODELS_DIR', () => {
    assert.deepEqual(parseBackendsFile('models: {}\nbackends: {}'), { models: [], localModels: [], backends: [] });
  });

  it('rejects text that is not YAML', () => {
    assert.throws(() => parseBackendsFile('models: [unclosed'), /not valid YAML/);
  });

  it('reads local model entries with their llama options apart from the routed ones', () => {
    const file = parseBackendsFile(
      [
        'models:',
        '  routed: { tiers: [[x]] }',
        '  chat: { aliases: [default], local: qwen-7b-q4, llama: { ctxSize: 8192, parallel: 2, args: [--flash-attn, on, --no-mmap] } }',
        '  embed: { local: /models/bge.gguf, llama: { mode: embeddings } }',
        'backends:',
        '  x: { kind: llamacpp, url: "http://x" }',
      ].join('\n'),
    );
    assert.deepEqual(
      file.models.map((m) => m.name),
      ['routed'],
    );
    assert.deepEqual(
      file.localModels.map((m) => [m.name, m.local, m.aliases]),
      [
        ['chat', 'qwen-7b-q4', ['default']],
        ['embed', '/models/bge.gguf', []],
      ],
    );
    assert.equal(localModelPath(file.localModels[0]!, '/data/models/'), '/data/models/qwen-7b-q4.gguf');
    assert.equal(localModelPath(file.localModels[1]!, '/data/models'), '/models/bge.gguf');
    assert.deepEqual(localModelPreset(file.localModels[0]!), {
      'ctx-size': '8192',
      parallel: '2',
      'flash-attn': 'on',
      'no-mmap': 'true',
    });
    assert.deepEqual(localModelPreset(file.localModels[1]!), { embedding: 'true' });
    assert.deepEqual(
      parseBackendsFile('models: { r: { local: r, llama: { mode: rerank } } }\nbackends: {}').localModels[0]!.llama,
      {
        mode: 'rerank',
      },
    );
  });

  it('names the entry of a local model that is given wrong: both tiers and local, neither, a bad file, stray args', () => {
    const text = [
      'models:',
      '  both: { tiers: [[x]], local: m }',
      '  neither: { aliases: [n] }',
      '  opts: { tiers: [[x]], llama: { ctxSize: 4 } }',
      '  stray: { local: m, llama: { args: [on, --flag] } }',
      'backends:',
      '  x: { kind: llamacpp, url: "http://x" }',
    ].join('\n');
    assert.throws(
      () => parseBackendsFile(text),
      (err: BackendsFileError) => {
        const has = (part: string) => err.problems.some((p) => p.includes(part));
        assert.ok(
          has('line 2: models.both: give either tiers (backends) or local (a model file), not both'),
          err.message,
        );
        assert.ok(
          has('line 3: models.neither: give tiers (backends to route to) or local (a model file)'),
          err.message,
        );
        assert.ok(has('models.opts: give either tiers'), err.message);
        assert.ok(has('models.stray.llama.args: "on" follows no --flag'), err.message);
        return true;
      },
    );
    const shapes = 'models:\n  escape: { local: ../etc/passwd }\n  typo: { local: m, llama: { ctx: 4 } }\nbackends: {}';
    assert.throws(
      () => parseBackendsFile(shapes),
      (err: BackendsFileError) =>
        err.problems.some((p) =>
          p.startsWith('line 2: models.escape.local: must be a model file name in MODELS_DIR'),
        ) && err.problems.includes('line 3: models.typo.llama: unknown field "ctx"'),
    );
  });
});
