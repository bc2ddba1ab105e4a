import assert from 'node:assert/strict';
import { formatResetDuration, rateLimitHeaders, retryAfterSeconds } from '../../src/rate-limit-headers.js';

describe('rate-limit headers', () => {
  it('writes reset durations the way OpenAI does', () => {
    assert.equal(formatResetDuration(0), '0s');
    assert.equal(formatResetDuration(250), '250ms');
    assert.equal(formatResetDuration(12_000), '12s');
    assert.equal(formatResetDuration(11_001), '12s');
    assert.equal(formatResetDuration(90_000), '1m30s');
    assert.equal(formatResetDuration(60_000), '1m0s');
    assert.equal(formatResetDuration(7_205_000), '2h0m5s');
  });

  it('never tells a client to retry after 0 seconds', () => {
    assert.equal(retryAfterSeconds(0), '1');
    assert.equal(retryAfterSeconds(1500), '2');
  });

  it('sends the token headers only for a key with a token limit', () => {
    const requests = { limit: 60, remaining: 59, msBeforeReset: 30_000 };
    assert.deepEqual(rateLimitHeaders(requests, null), {
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '59',
      'x-ratelimit-reset-requests': '30s',
    });
    assert.deepEqual(rateLimitHeaders(null, { limit: 1000, remaining: 0, msBeforeReset: 5000 }), {
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '5s',
    });
  });
});
