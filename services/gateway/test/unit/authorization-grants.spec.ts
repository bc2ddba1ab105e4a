import assert from 'node:assert/strict';
import type { AuthorizeRequest, AuthorizeResponse } from '@gguf-gateway/shared';
import { AuthorizationGrants } from '../../src/authorization/authorization-grants.js';

const request: AuthorizeRequest = { key: 'sk-unit-0123456789', model: 'tiny', route: 'chat', ip: '10.0.0.1' };

function decision(grantTtlMs?: number): AuthorizeResponse {
  return {
    keyId: 'unit',
    scopes: [],
    limits: { rpm: 10, tpm: null, concurrency: null, dailyTokens: null, budgetUsdDay: null, budgetUsdMonth: null },
    remaining: { requests: 9, tokens: null },
    lease: 'lease-1',
    leaseTtlSec: 60,
    ...(grantTtlMs === undefined ? {} : { grant: { ttlMs: grantTtlMs } }),
  };
}

describe('authorization grants', () => {
  it('serves a granted decision only for the same key, route, model and address, until it expires', async () => {
    const grants = new AuthorizationGrants();
    grants.keep(request, decision(30));
    assert.equal(grants.find(request)?.keyId, 'unit');
    for (const other of [
      { key: 'sk-other-0123456789' },
      { route: 'embeddings' as const },
      { model: 'x' },
      { ip: '10.0.0.2' },
    ]) {
      assert.equal(grants.find({ ...request, ...other }), undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.equal(grants.find(request), undefined);
  });

  it('keeps nothing from an answer without a grant, and drops the grant it replaces', () => {
    const grants = new AuthorizationGrants();
    grants.keep(request, decision(1000));
    grants.keep(request, decision());
    assert.equal(grants.find(request), undefined);
  });

  it('lets requests wait for a call to auth only when it may bring a grant', async () => {
    const grants = new AuthorizationGrants();
    let answer!: (d: AuthorizeResponse) => void;
    const first = grants.asking(request, () => new Promise<AuthorizeResponse>((resolve) => (answer = resolve)));
    assert.equal(grants.askedAlready(request), undefined, 'never granted: nothing to wait for');
    answer(decision(0));
    await first;

    grants.keep(request, decision(1));
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = grants.asking(request, () => new Promise<AuthorizeResponse>((resolve) => (answer = resolve)));
    const waiting = grants.askedAlready(request);
    assert.ok(waiting, 'an expired grant: wait for the call that renews it');
    answer(decision(1000));
    grants.keep(request, await second);
    await waiting;
    assert.equal(grants.find(request)?.grant?.ttlMs, 1000);
  });
});
