import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '@gguf-gateway/shared';
import { orchestratorConfigSchema } from '../../src/config.js';
import { defaultKeysFile } from '../../src/data-dir.js';
import { withSeedAliases } from '../../src/seed-aliases.js';

describe("the seed project's variables in the all-in-one image", () => {
  const seedEnv = {
    BACKENDS_FILE: '/etc/backends.yaml',
    MODEL_NAME: 'qwen2.5-0.5b-instruct-q4_k_m.gguf',
    NGL: '99',
    CTX: '8192',
    AUTH_KEYS_FILE: '/workspace/keys.txt',
    AUTH_ENABLED: 'true',
    MAX_REQUESTS_PER_MINUTE: '120',
    PORT: '8000',
    PORT_HEALTH: '8001',
  };

  it('reads MODEL_NAME, NGL, CTX, AUTH_KEYS_FILE, MAX_REQUESTS_PER_MINUTE and PORT as ours', () => {
    const config = loadConfig(orchestratorConfigSchema, withSeedAliases(seedEnv, 'supervise'));
    assert.equal(config.MODEL_PATH, 'qwen2.5-0.5b-instruct-q4_k_m.gguf');
    assert.equal(config.LLAMA_N_GPU_LAYERS, 99);
    assert.equal(config.LLAMA_CTX_SIZE, 8192);
    assert.equal(config.API_KEYS_FILE, '/workspace/keys.txt');
    assert.equal(config.DEFAULT_KEY_RPM, 120);
    assert.equal(config.GATEWAY_PORT, 8000, "the seed's PORT is the API port");
    assert.equal(config.PORT, 8099, "the orchestrator's own status port keeps its default");
    assert.equal(config.PORT_HEALTH, 8001);
  });

  it('lets our own names win over the seed ones', () => {
    const env = withSeedAliases({ ...seedEnv, MODEL_PATH: '/models/x.gguf', GATEWAY_PORT: '9000' }, 'supervise');
    assert.equal(env.MODEL_PATH, '/models/x.gguf');
    assert.equal(env.GATEWAY_PORT, '9000');
    assert.equal(env.PORT, '8000');
  });

  it('refuses AUTH_ENABLED=false with a message that says keys are always required', () => {
    assert.throws(
      () => withSeedAliases({ ...seedEnv, AUTH_ENABLED: 'false' }, 'supervise'),
      (err: unknown) => err instanceof ConfigError && /always requires an API key/.test(err.message),
    );
  });

  it("finds the seed's $DATA_DIR/api_keys.txt when our api_keys is not there", () => {
    assert.equal(
      defaultKeysFile('/data', (p) => p === '/data/api_keys.txt'),
      '/data/api_keys.txt',
    );
    assert.equal(
      defaultKeysFile('/data', () => true),
      '/data/api_keys',
    );
    assert.equal(
      defaultKeysFile('/data', () => false),
      '/data/api_keys',
    );
  });
});
