import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, env, loadConfig, z } from '@gguf-gateway/shared';

const schema = {
  PORT: env.port(8080),
  REDIS_URL: env.url(),
  DATABASE_URL: env.url(),
  TIMEOUT_MS: env.millis(1000),
  STRICT: env.bool(false),
  HOSTS: env.list(),
  HF_TOKEN: z.string().optional(),
};

describe('config loader', () => {
  it('parses a valid environment with defaults and coercion', () => {
    const config = loadConfig(schema, {
      REDIS_URL: 'redis://127.0.0.1:6379',
      DATABASE_URL: 'postgres://postgres@127.0.0.1/db',
      TIMEOUT_MS: '250',
      STRICT: 'yes',
      HOSTS: 'huggingface.co, cdn-lfs.hf.co',
    });
    assert.equal(config.PORT, 8080);
    assert.equal(config.TIMEOUT_MS, 250);
    assert.equal(config.STRICT, true);
    assert.deepEqual(config.HOSTS, ['huggingface.co', 'cdn-lfs.hf.co']);
  });

  it('reports every missing or invalid variable in one message', () => {
    assert.throws(
      () => loadConfig(schema, { PORT: '99999', REDIS_URL: 'not a url', TIMEOUT_MS: '-5' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^Invalid environment variables: /);
        for (const name of ['PORT', 'REDIS_URL', 'DATABASE_URL: required', 'TIMEOUT_MS']) {
          assert.ok(err.message.includes(name), `message names ${name}: ${err.message}`);
        }
        assert.equal(err.problems.length, 4);
        return true;
      },
    );
  });

  it('reads a secret from NAME_FILE and never echoes a bad value of it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gg-config-'));
    const file = join(dir, 'hf_token');
    writeFileSync(file, 'hf_secretvalue123\n');
    const base = { REDIS_URL: 'redis://r:6379', DATABASE_URL: 'postgres://p/db' };
    const config = loadConfig(schema, { ...base, HF_TOKEN_FILE: file }, { fileVariables: ['HF_TOKEN'] });
    assert.equal(config.HF_TOKEN, 'hf_secretvalue123');

    assert.throws(
      () => loadConfig(schema, { ...base, HF_TOKEN: 'x', HF_TOKEN_FILE: file }, { fileVariables: ['HF_TOKEN'] }),
      /HF_TOKEN and HF_TOKEN_FILE are both set/,
    );
    assert.throws(
      () => loadConfig(schema, { ...base, HF_TOKEN_FILE: join(dir, 'missing') }, { fileVariables: ['HF_TOKEN'] }),
      /HF_TOKEN_FILE: cannot read .*missing \(ENOENT\)/,
    );
  });
});
