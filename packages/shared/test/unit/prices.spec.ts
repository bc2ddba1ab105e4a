import assert from 'node:assert/strict';
import { costUsd, globToRegExp, parsePriceTable } from '@gguf-gateway/shared';

describe('price table', () => {
  const table = parsePriceTable(`
models:
  "llama-3.1-8b*": { prompt: 0.05, completion: 0.08 }
  "gpt-4o": { prompt: 2.5, completion: 10 }
  "*": { prompt: 0, completion: 0 }
`);

  it('costs a request by the first matching model glob', () => {
    assert.equal(costUsd(table, 'llama-3.1-8b-instruct', 1_000_000, 500_000), 0.05 + 0.04);
    assert.equal(costUsd(table, 'gpt-4o', 1000, 1000), 0.0125);
    assert.equal(costUsd(table, 'anything-else', 1000, 1000), 0);
  });

  it('costs nothing for a model missing from an empty table', () => {
    assert.equal(costUsd([], 'gpt-4o', 1000, 1000), 0);
  });

  it('names the bad field of an invalid table', () => {
    assert.throws(
      () => parsePriceTable('models:\n  gpt-4o: { prompt: -1, completion: 2 }\n', 'prices.yaml'),
      /prices.yaml is invalid: models.gpt-4o.prompt/,
    );
    assert.throws(() => parsePriceTable('models:\n  gpt-4o: { prompt: 1 }\n'), /models.gpt-4o.completion: Required/);
  });

  it('matches globs literally apart from * and ?', () => {
    assert.ok(globToRegExp('qwen2.5-*').test('qwen2.5-7b'));
    assert.ok(!globToRegExp('qwen2.5-*').test('qwen2x5-7b'));
    assert.ok(globToRegExp('llama-?b').test('llama-8b'));
  });
});
