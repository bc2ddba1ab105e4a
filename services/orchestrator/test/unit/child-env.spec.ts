import assert from 'node:assert/strict';
import { nodeServiceEnv, pinnedModels, systemEnv } from '../../src/supervisor/child-env.js';
import { llamaServerSpec } from '../../src/supervisor/stack.processes.js';

describe("each supervised process's environment", () => {
  const env = {
    PATH: '/usr/bin',
    HOME: '/root',
    CUDA_VISIBLE_DEVICES: '0',
    HF_TOKEN: 'hf_secret',
    INFERENCE_API_KEY: 'sk-inference',
    INFERENCE_API_KEY_FILE: '/run/secrets/inference_api_key',
    REDIS_URL: 'redis://127.0.0.1:6379',
    RATE_SETTING: 'kept',
  };

  it('gives HF_TOKEN to the worker only', () => {
    assert.equal(nodeServiceEnv('worker', env).HF_TOKEN, 'hf_secret');
    for (const name of ['auth', 'metrics', 'gateway'] as const)
      assert.equal(nodeServiceEnv(name, env).HF_TOKEN, undefined);
  });

  it('gives the inference key to the gateway only, and its _FILE twin to none', () => {
    assert.equal(nodeServiceEnv('gateway', env).INFERENCE_API_KEY, 'sk-inference');
    for (const name of ['auth', 'metrics', 'worker'] as const) {
      assert.equal(nodeServiceEnv(name, env).INFERENCE_API_KEY, undefined);
    }
    for (const name of ['auth', 'metrics', 'worker', 'gateway'] as const) {
      assert.equal(nodeServiceEnv(name, env).INFERENCE_API_KEY_FILE, undefined);
    }
    assert.equal(nodeServiceEnv('auth', env).RATE_SETTING, 'kept', "the stack's settings still reach every service");
  });

  it('gives the gateway its model-loading settings as set, and no other service', () => {
    const models = {
      ...env,
      MODELS_DIR: '/data/models',
      MODELS_ROUTER_URL: 'http://127.0.0.1:8180',
      MODELS_MEMORY_FILE: '/data/memory-budget.json',
      MODELS_PINNED: 'qwen,tiny',
      MODELS_MAX_LOADED: '2',
      MODEL_LOAD_TIMEOUT_MS: '600000',
      MODEL_IDLE_UNLOAD_SEC: '300',
    };
    const gateway = nodeServiceEnv('gateway', models);
    for (const key of Object.keys(models).filter((k) => k.startsWith('MODEL'))) {
      assert.equal(gateway[key], models[key as keyof typeof models], key);
    }
    const worker = nodeServiceEnv('worker', models);
    assert.equal(worker.MODELS_DIR, '/data/models', 'the worker pulls into MODELS_DIR');
    assert.equal(worker.MODELS_ROUTER_URL, undefined);
    assert.equal(worker.MODELS_PINNED, undefined);
    assert.deepEqual(systemEnv(models), { PATH: '/usr/bin', HOME: '/root', CUDA_VISIBLE_DEVICES: '0' });
  });

  it('gives llama-server, Redis and Postgres none of the stack settings or secrets', () => {
    assert.deepEqual(systemEnv(env), { PATH: '/usr/bin', HOME: '/root', CUDA_VISIBLE_DEVICES: '0' });
  });

  it("pins the default model next to the user's MODELS_PINNED, once", () => {
    assert.equal(pinnedModels(undefined, 'tiny'), 'tiny');
    assert.equal(pinnedModels(' qwen, tiny ,', 'tiny'), 'qwen,tiny');
    assert.equal(pinnedModels('qwen', null), 'qwen');
  });

  it("gives llama-server's router its key and an empty model cache of its own, not HOME's", () => {
    const spec = llamaServerSpec('llama-server', [], 8180, 'sk-inference', env, 1000, '/data/llama-cache');
    assert.deepEqual(spec.env, {
      PATH: '/usr/bin',
      HOME: '/root',
      CUDA_VISIBLE_DEVICES: '0',
      LLAMA_API_KEY: 'sk-inference',
      // The router also lists models from llama.cpp's download cache (HOME's by default, which
      // RUN_AS_USER may not read: it would not start).
      LLAMA_CACHE: '/data/llama-cache',
    });
  });
});
