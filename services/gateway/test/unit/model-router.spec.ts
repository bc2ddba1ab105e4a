import assert from 'node:assert/strict';
import { parseBackendsFile, type BackendsFileError } from '@gguf-gateway/shared';
import type { BackendState } from '../../src/routing/backend-state.js';
import { ModelRouter } from '../../src/routing/model-router.js';

const FILE = parseBackendsFile(`
models:
  m: { aliases: [m-alias], tiers: [[a, b], [c]] }
backends:
  a: { kind: llamacpp, url: "http://a:8180" }
  b: { kind: llamacpp, url: "http://b:8180", maxInFlight: 1 }
  c: { kind: openai, url: "https://c.example/api", apiKeyEnv: C_KEY }
`);

const VALID = `
models:
  tiny:
    aliases: [tiny-chat]
    tiers: [[local]]
  remote:
    tiers: [[router]]
backends:
  local: { kind: llamacpp, url: "http://inference:8180" }
  router: { kind: openai, url: "https://openrouter.ai/api", model: "meta/llama", apiKeyEnv: OPENROUTER_KEY }
`;

function router(threshold = 2) {
  return new ModelRouter(FILE, (b) => (b.apiKeyEnv ? 'c-key' : undefined), {
    failureThreshold: threshold,
    cooldownMs: 1000,
  });
}

describe('model router', () => {
  it('resolves models and aliases to their backend, with the backend model name and key', () => {
    const router = new ModelRouter(parseBackendsFile(VALID), (b) => (b.apiKeyEnv ? 'remote-key' : 'local-key'));
    const alias = router.resolve('tiny-chat')!;
    assert.equal(alias.model, 'tiny');
    assert.equal(alias.tiers[0]![0]!.backend.name, 'local');
    assert.equal(alias.tiers[0]![0]!.backend.apiKey, 'local-key');
    const remote = router.resolve('remote')!.tiers[0]![0]!.backend;
    assert.equal(remote.model, 'meta/llama');
    assert.equal(remote.apiKey, 'remote-key');
    assert.equal(router.resolve('nope'), null);
    assert.deepEqual(
      router.models().map((m) => m.id),
      ['tiny', 'tiny-chat', 'remote'],
    );
  });

  it('prefers the least busy backend of the first tier, counting llama.cpp busy slots', () => {
    const r = router();
    const route = r.resolve('m')!;
    const [a, b] = route.tiers[0]!;
    a!.slots = 2;
    a!.busySlots = 2;
    assert.equal(r.pick(route, new Set())!.state, b);
    a!.busySlots = 0;
    a!.inFlight = 1;
    b!.slots = 4;
    assert.equal(r.pick(route, new Set())!.state.name, 'b', 'a is half busy, b idle');
  });

  it('shares idle backends in turn', () => {
    const r = router();
    const route = r.resolve('m')!;
    const names = Array.from({ length: 4 }, () => r.pick(route, new Set())!.state.name);
    assert.deepEqual(names.sort(), ['a', 'a', 'b', 'b']);
  });

  it('skips a backend at its maxInFlight, then falls back to the next tier', () => {
    const r = router();
    const route = r.resolve('m')!;
    const [a, b] = route.tiers[0]!;
    b!.inFlight = 1;
    assert.equal(r.pick(route, new Set())!.state, a);
    const pick = r.pick(route, new Set<BackendState>([a!]))!;
    assert.equal(pick.state.name, 'c');
    assert.equal(pick.tier, 1);
    assert.equal(r.pick(route, new Set<BackendState>([a!, pick.state])), null);
  });

  it('cools a backend down after the threshold of failures in a row, probes it at once and every cooldown after, and a good probe brings it back', () => {
    const r = router(2);
    const a = r.resolve('m')!.tiers[0]![0]!;
    a.failed('connect', 0);
    a.succeeded();
    a.failed('connect', 0);
    assert.equal(a.health, 'healthy', 'a success in between resets the count');
    a.failed('connect', 0);
    assert.equal(a.health, 'cooling_down');
    assert.equal(a.probeDue(0), true, 'half-open: the first probe comes at once');
    a.probed('still down', 1000);
    assert.equal(a.probeDue(1500), false, 'a failed probe starts another period');
    assert.equal(a.probeDue(2000), true);
    a.probed(null, 2000);
    assert.equal(a.health, 'healthy');
    assert.deepEqual(
      r.models().map((m) => [m.id, m.status]),
      [
        ['m', 'available'],
        ['m-alias', 'available'],
      ],
    );
  });

  it('reports a model degraded while some of its backends cool down, unavailable when all do', () => {
    const r = router();
    const route = r.resolve('m')!;
    route.tiers[0]![0]!.coolDown('x');
    assert.equal(r.models()[0]!.status, 'degraded');
    for (const b of route.tiers.flat()) b.coolDown('x');
    assert.equal(r.models()[0]!.status, 'unavailable');
  });

  it('keeps the state of backends that survive a reload and leaves resolved routes untouched', () => {
    const r = router();
    const before = r.resolve('m')!;
    const a = before.tiers[0]![0]!;
    a.inFlight = 3;
    r.replace(
      parseBackendsFile(`
models:
  n: { tiers: [[a]] }
backends:
  a: { kind: llamacpp, url: "http://a:8180" }
`),
    );
    assert.equal(r.resolve('m'), null);
    assert.equal(r.resolve('n')!.tiers[0]![0], a, 'same object: in-flight count and breaker carried over');
    assert.equal(before.tiers[0]![1]!.name, 'b', 'a request in flight keeps the route it resolved');
  });

  it('refuses a table whose key variable is not set, naming the backend and the variable', () => {
    assert.throws(
      () =>
        new ModelRouter(FILE, (b) => {
          if (b.apiKeyEnv) throw new Error(`${b.apiKeyEnv} (or ${b.apiKeyEnv}_FILE) is not set`);
          return undefined;
        }),
      (err: BackendsFileError) => err.problems[0] === 'backends.c.apiKeyEnv: C_KEY (or C_KEY_FILE) is not set',
    );
  });
});
