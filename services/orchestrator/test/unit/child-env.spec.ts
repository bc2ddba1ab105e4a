import assert from 'node:assert/strict';
import { nodeServiceEnv, systemEnv } from '../../src/supervisor/child-env.js';

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

  it('gives llama-server, Redis and Postgres none of the stack settings or secrets', () => {
    assert.deepEqual(systemEnv(env), { PATH: '/usr/bin', HOME: '/root', CUDA_VISIBLE_DEVICES: '0' });
  });
});
