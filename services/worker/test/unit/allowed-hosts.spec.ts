import assert from 'node:assert/strict';
import { loadConfig } from '@gguf-gateway/shared';
import { AllowedHosts } from '../../src/allowed-hosts.js';
import { workerConfigSchema } from '../../src/config.js';

describe('allowed download hosts', () => {
  it('allows the Hugging Face hub and its CDNs by default, and nothing else', () => {
    const config = loadConfig(workerConfigSchema, {
      REDIS_URL: 'redis://127.0.0.1:6379',
      DATABASE_URL: 'postgres://postgres@127.0.0.1/x',
      MODELS_DIR: '/models',
    });
    const hosts = new AllowedHosts(config.PULL_ALLOWED_HOSTS);
    for (const url of [
      'https://huggingface.co/a/b/resolve/main/c.gguf',
      'https://cdn-lfs.huggingface.co/repos/x',
      'https://cdn-lfs-us-1.hf.co/repos/x',
      'https://cas-bridge.xethub.hf.co/xet-bridge-us/x',
    ]) {
      assert.ok(hosts.allows(new URL(url)), url);
    }
    for (const url of ['https://evil.example/x', 'https://huggingface.co.evil.example/x', 'https://nothf.co/x']) {
      assert.ok(!hosts.allows(new URL(url)), url);
    }
  });

  it('tells two servers on one address apart by port when the entry names one', () => {
    const hosts = new AllowedHosts(['127.0.0.1:9001', 'models.internal']);
    assert.ok(hosts.allows(new URL('http://127.0.0.1:9001/x')));
    assert.ok(!hosts.allows(new URL('http://127.0.0.1:9002/x')));
    assert.ok(hosts.allows(new URL('https://models.internal:8443/x')));
  });
});
