// A backend's usage is charged and recorded only when every count is a whole number the usage
// columns (Postgres integer) can hold: anything else is estimated and logged, so one bad value can
// never stop metering downstream.
import assert from 'node:assert/strict';
import type { AuthStub } from '../support/auth-stub.js';
import { FAKE_PROMPT_TOKENS, POISONED_USAGE } from '../support/fake-openai.js';
import { startFakeBackendStack, type FakeBackendStack } from '../support/fake-backend-stack.js';
import type { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-usage-0123456789';

describe('usage a backend reports out of range', function () {
  let auth: AuthStub;
  let gateway: GatewayHarness;
  let stack: FakeBackendStack;

  before(async () => {
    ({ auth, gateway } = stack = await startFakeBackendStack({
      user: USER,
      fakeModels: ['fine', ...Object.keys(POISONED_USAGE)],
    }));
  });

  after(() => stack.stop());

  async function chat(model: string, stream: boolean, id: string): Promise<number> {
    const res = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model, stream, max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] }),
    });
    await res.text();
    return res.status;
  }

  for (const stream of [false, true]) {
    it(`records and settles an estimate instead of 3e9, negative, fractional or text counts (${stream ? 'stream' : 'JSON'})`, async () => {
      for (const model of Object.keys(POISONED_USAGE)) {
        const id = `${model}-${stream}`;
        assert.equal(await chat(model, stream, id), 200);
        const event = await gateway.usageEvent(id);
        assert.equal(event.usageSource, 'estimated', `${model}: ${JSON.stringify(event)}`);
        for (const count of [event.promptTokens, event.completionTokens, event.cachedTokens]) {
          assert.ok(Number.isInteger(count) && count >= 0 && count < 1_000_000, `${model}: ${count}`);
        }
      }
      for (const settle of auth.settles) {
        assert.ok(Number.isInteger(settle.promptTokens) && settle.promptTokens < 1_000_000);
        assert.ok(Number.isInteger(settle.completionTokens) && settle.completionTokens >= 0);
      }
      assert.match(gateway.logs.text(), /the backend reported impossible usage: estimated instead/);
      assert.match(gateway.logs.text(), /promptTokens 3000000000 is not a whole number/);
    });
  }

  it('keeps usage in range as the backend reported it', async () => {
    assert.equal(await chat('fine', false, 'fine-1'), 200);
    const event = await gateway.usageEvent('fine-1');
    assert.equal(event.usageSource, 'upstream');
    assert.equal(event.promptTokens, FAKE_PROMPT_TOKENS);
    assert.equal(event.completionTokens, 3);
  });
});
