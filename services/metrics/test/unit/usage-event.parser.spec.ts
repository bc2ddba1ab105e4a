import assert from 'node:assert/strict';
import { fakeUsageEvent } from '@gguf-gateway/testkit';
import { parseUsageEvent, statusClass } from '../../src/usage-event.parser.js';

describe('usage event parser', () => {
  it('reads the event the gateway writes', () => {
    const event = fakeUsageEvent(7);
    assert.deepEqual(parseUsageEvent(JSON.stringify(event)), event);
  });

  it('names what is wrong with an entry that is not a usage event', () => {
    assert.equal(parseUsageEvent(undefined), 'entry has no event field');
    assert.equal(parseUsageEvent('{"requestId":'), 'event is not JSON');
    const problem = parseUsageEvent(JSON.stringify({ ...fakeUsageEvent(1), promptTokens: -1, ts: 'yesterday' }));
    assert.match(problem as string, /ts: /);
    assert.match(problem as string, /promptTokens: /);
  });

  it('refuses a count or duration beyond the integer columns that store it, and a fractional one', () => {
    for (const field of ['promptTokens', 'completionTokens', 'cachedTokens', 'ttftMs', 'durationMs'] as const) {
      const tooLarge = parseUsageEvent(JSON.stringify({ ...fakeUsageEvent(1), [field]: 3e9 }));
      assert.match(tooLarge as string, new RegExp(`^${field}: `), field);
      assert.equal(typeof parseUsageEvent(JSON.stringify({ ...fakeUsageEvent(1), [field]: 2_147_483_647 })), 'object');
      assert.equal(typeof parseUsageEvent(JSON.stringify({ ...fakeUsageEvent(1), [field]: 1.5 })), 'string');
    }
  });

  it('classes statuses as 2xx, 4xx, 5xx, or aborted when the client went away', () => {
    assert.equal(statusClass({ status: 200, errorCode: null }), '2xx');
    assert.equal(statusClass({ status: 429, errorCode: 'rate_limit_exceeded' }), '4xx');
    assert.equal(statusClass({ status: 502, errorCode: 'upstream_error' }), '5xx');
    assert.equal(statusClass({ status: 200, errorCode: 'client_aborted' }), 'aborted');
  });
});
