import assert from 'node:assert/strict';
import { localModelPreset } from '@gguf-gateway/shared';
import {
  ModelsPresetError,
  modelsPresetSections,
  renderModelsPreset,
  routerArgs,
  routerModelName,
} from '../../src/router/models-preset.js';

const defaults = { 'n-gpu-layers': 'all', 'ctx-size': '8192', parallel: '2', threads: '4' };

describe("llama-server router mode: the orchestrator's models preset", () => {
  it('starts the router on the models folder and the preset, loading nothing by itself and setting no limit', () => {
    assert.deepEqual(routerArgs('/models', '/data/llama-server.models.ini'), [
      '--models-dir',
      '/models',
      '--models-preset',
      '/data/llama-server.models.ini',
      '--no-models-autoload',
      '--models-max',
      '0',
    ]);
  });

  it("puts the planner's settings in [*] and names the default model `default` plus the backends file's aliases", () => {
    const ini = renderModelsPreset(
      modelsPresetSections({
        modelsDir: '/models',
        defaults,
        defaultModel: { path: '/models/qwen2.5-7b-q4_k_m.gguf', options: {} },
        defaultAliases: ['gpt-4o-mini'],
        localModels: [],
      }),
    );
    assert.equal(
      ini,
      [
        '; Written by the orchestrator on every start (prepare / supervise): edits are replaced.',
        '',
        '[*]',
        'n-gpu-layers = all',
        'ctx-size = 8192',
        'parallel = 2',
        'threads = 4',
        '',
        '[qwen2.5-7b-q4_k_m]',
        'alias = default,gpt-4o-mini',
        '',
      ].join('\n'),
    );
  });

  it('gives a default model outside the models folder its path', () => {
    const [, section] = modelsPresetSections({
      modelsDir: '/models',
      defaults,
      defaultModel: { path: '/workspace/my model.gguf', options: {} },
      defaultAliases: [],
      localModels: [],
    });
    assert.deepEqual(section, { name: 'my model', options: { alias: 'default', model: '/workspace/my model.gguf' } });
  });

  it('writes a section per backends-file local: entry with its options, aliases and, when needed, its path', () => {
    const sections = modelsPresetSections({
      modelsDir: '/models',
      defaults,
      defaultModel: null,
      defaultAliases: [],
      localModels: [
        {
          name: 'embed',
          aliases: ['text-embedding-3-small'],
          path: '/models/bge-small-q8.gguf',
          options: localModelPreset({ llama: { ctxSize: 512, mode: 'embeddings' } }),
        },
        {
          name: 'qwen',
          aliases: [],
          path: '/models/qwen.gguf',
          options: localModelPreset({ llama: { parallel: 1, args: ['--flash-attn', 'on', '--jinja'] } }),
        },
      ],
    });
    assert.deepEqual(sections.slice(1), [
      {
        name: 'embed',
        options: {
          alias: 'text-embedding-3-small',
          model: '/models/bge-small-q8.gguf',
          'ctx-size': '512',
          embedding: 'true',
        },
      },
      { name: 'qwen', options: { parallel: '1', 'flash-attn': 'on', jinja: 'true' } },
    ]);
  });

  it('merges a local: entry that names the default model into its one section', () => {
    const ini = renderModelsPreset(
      modelsPresetSections({
        modelsDir: '/models',
        defaults,
        defaultModel: { path: '/models/qwen.gguf', options: {} },
        defaultAliases: [],
        localModels: [
          { name: 'qwen', aliases: ['qwen-chat'], path: '/models/qwen.gguf', options: { 'ctx-size': '4096' } },
        ],
      }),
    );
    assert.equal(ini.match(/^\[qwen\]$/gm)?.length, 1);
    assert.match(ini, /\[qwen\]\nalias = default,qwen-chat\nctx-size = 4096\n/);
  });

  it("refuses what the router's ini parser would cut short, naming it", () => {
    const render =
      (options: Record<string, string>, name = 'm') =>
      () =>
        renderModelsPreset([{ name, options }]);
    assert.throws(render({ model: '/models/a#b.gguf' }), ModelsPresetError);
    assert.throws(render({ 'chat-template': 'line one\nline two' }), /\[m\] chat-template: the value/);
    assert.throws(render({}, 'bad]name'), /model name "bad\]name"/);
    assert.throws(render({ '--ctx-size': '1' }), /"--ctx-size" is not a llama-server option name/);
    // The router rewrites what follows a colon, as a quantisation tag.
    assert.throws(render({}, 'qwen:7b-q4'), /router would call it "qwen:Q4"/);
    assert.doesNotThrow(render({}, 'qwen:Q4_K_M'));
  });

  it('names a model as the router does: its file name without .gguf', () => {
    assert.equal(routerModelName('/models/Llama-3.1-8B-Q4_K_M.gguf'), 'Llama-3.1-8B-Q4_K_M');
  });
});
