import assert from 'node:assert/strict';
import { ApiError } from '@gguf-gateway/shared';
import {
  ModelAdmission,
  type AdmissionEvents,
  type AdmissionSettings,
  type AdmittedModel,
  type EvictionReason,
  type ModelLoader,
} from '../../src/models/model-admission.js';

const MB = 1024 * 1024;
const model = (name: string, bytes = 100 * MB): AdmittedModel => ({ name, routerId: `${name}-id`, bytes });
const A = model('a');
const B = model('b');
const C = model('c');

/** A router stand-in: loads take `loadMs`, each call is recorded, a load can be made to fail. */
class StubLoader implements ModelLoader {
  readonly calls: string[] = [];
  readonly running = new Set<string>();
  failing = new Set<string>();
  constructor(private readonly loadMs = 5) {}
  async load(id: string): Promise<void> {
    this.calls.push(`load ${id}`);
    await sleep(this.loadMs);
    if (this.failing.has(id)) throw new Error('its process exited with code 1');
    this.running.add(id);
  }
  async unload(id: string): Promise<void> {
    this.calls.push(`unload ${id}`);
    await sleep(1);
    this.running.delete(id);
  }
  loads(): number {
    return this.calls.filter((c) => c.startsWith('load')).length;
  }
}

class RecordedEvents implements AdmissionEvents {
  readonly evictions: [string, EvictionReason][] = [];
  waitingNow = 0;
  maxWaiting = 0;
  loadedNow = 0;
  loaded(): void {}
  evicted(model: string, reason: EvictionReason): void {
    this.evictions.push([model, reason]);
  }
  waiting(delta: number): void {
    this.waitingNow += delta;
    this.maxWaiting = Math.max(this.maxWaiting, this.waitingNow);
  }
  loadedCount(count: number): void {
    this.loadedNow = count;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function admission(settings: Partial<AdmissionSettings> = {}, loader = new StubLoader()) {
  const events = new RecordedEvents();
  const admit = new ModelAdmission(
    loader,
    {
      maxLoaded: 2,
      memoryBytes: 1024 * MB,
      capacityWaitMs: 2000,
      loadTimeoutMs: 5000,
      idleUnloadMs: 0,
      pinned: new Set(),
      ...settings,
    },
    events,
  );
  return { admit, loader, events };
}

const rejectsWith = (status: number, code: string, pattern?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ApiError, String(err));
  assert.equal(err.status, status);
  assert.equal(err.code, code);
  if (pattern) assert.match(err.message, pattern);
  return true;
};

describe('model admission', () => {
  it('loads a model once for many concurrent requests, which all wait on that one load', async () => {
    const { admit, loader, events } = admission();
    const releases = await Promise.all(Array.from({ length: 10 }, () => admit.acquire(A)));
    assert.equal(loader.loads(), 1);
    assert.equal(admit.state('a').state, 'loaded');
    assert.equal(admit.state('a').inFlight, 10);
    assert.equal(events.maxWaiting, 10);
    assert.equal(events.waitingNow, 0);
    releases.forEach((release) => release());
    releases[0]!(); // a second release of the same slot changes nothing
    assert.equal(admit.state('a').inFlight, 0);
    assert.equal(events.loadedNow, 1);
  });

  it('unloads the least recently used idle model to make room for a third', async () => {
    const { admit, loader, events } = admission();
    (await admit.acquire(A))();
    await sleep(2);
    (await admit.acquire(B))();
    await sleep(2);
    (await admit.acquire(A))(); // a is now more recent than b
    (await admit.acquire(C))();
    assert.deepEqual(events.evictions, [['b', 'lru']]);
    assert.equal(admit.state('b').state, 'unloaded');
    assert.equal(admit.state('a').state, 'loaded');
    assert.equal(admit.state('c').state, 'loaded');
    assert.deepEqual(loader.calls, ['load a-id', 'load b-id', 'unload b-id', 'load c-id']);
  });

  it('never unloads a model with a request in flight: the new one waits until a model is idle', async () => {
    const { admit, events } = admission();
    const releaseA = await admit.acquire(A);
    const releaseB = await admit.acquire(B);
    let served = false;
    const forC = admit.acquire(C).then((release) => {
      served = true;
      return release;
    });
    await sleep(50);
    assert.equal(served, false);
    assert.equal(events.waitingNow, 1);
    releaseB();
    (await forC)();
    assert.deepEqual(events.evictions, [['b', 'lru']]);
    assert.equal(admit.state('a').state, 'loaded');
    releaseA();
  });

  it('answers 503 model_capacity with Retry-After after MODEL_CAPACITY_WAIT_MS when every model stays busy', async () => {
    const { admit, events } = admission({ capacityWaitMs: 100 });
    const releaseA = await admit.acquire(A);
    const releaseB = await admit.acquire(B);
    const started = Date.now();
    await assert.rejects(admit.acquire(C), (err: unknown) => {
      rejectsWith(503, 'model_capacity', /every loaded model is busy \(a, b\)/)(err);
      assert.ok(Number((err as ApiError).headers['Retry-After']) >= 1, JSON.stringify((err as ApiError).headers));
      return true;
    });
    assert.ok(Date.now() - started >= 95);
    assert.equal(events.waitingNow, 0);
    releaseA();
    releaseB();
  });

  it('answers 503 model_too_large naming both sizes when a model can never fit the memory budget', async () => {
    const { admit, loader } = admission({ memoryBytes: 150 * MB });
    await assert.rejects(
      admit.acquire(model('huge', 200 * MB)),
      rejectsWith(503, 'model_too_large', /'huge' needs 200\.0 MiB of memory and the budget is 150\.0 MiB/),
    );
    assert.equal(loader.loads(), 0);
  });

  it('fits models by memory as well as by count: a big one evicts two small idle ones', async () => {
    const { admit, events } = admission({ maxLoaded: 0, memoryBytes: 300 * MB });
    (await admit.acquire(A))();
    (await admit.acquire(B))();
    (await admit.acquire(model('big', 250 * MB)))();
    assert.deepEqual(
      events.evictions.map(([name]) => name),
      ['a', 'b'],
    );
  });

  it('queues 30 concurrent requests over 3 models with room for 2 instead of thrashing: 3 loads', async () => {
    const { admit, loader } = admission({}, new StubLoader(20));
    const models = [A, B, C];
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const release = await admit.acquire(models[i % 3]!);
        await sleep(5);
        release();
        return true;
      }),
    );
    assert.equal(results.length, 30);
    assert.ok(loader.loads() <= 4, `${loader.loads()} loads: ${loader.calls.join(', ')}`);
  });

  it('reports a failed load to every waiting request and does not retry it at once; an admin load does', async () => {
    const loader = new StubLoader();
    loader.failing.add('a-id');
    const { admit, events } = admission({}, loader);
    const all = await Promise.allSettled([admit.acquire(A), admit.acquire(A)]);
    for (const result of all) {
      assert.equal(result.status, 'rejected');
      assert.match(String((result as PromiseRejectedResult).reason), /its process exited with code 1/);
    }
    assert.equal(loader.loads(), 1);
    await assert.rejects(admit.acquire(A), rejectsWith(503, 'model_load_failed', /failed to load: its process exited/));
    assert.equal(admit.state('a').failure, 'its process exited with code 1');
    assert.deepEqual(events.evictions, [['a', 'failed']]);
    loader.failing.clear();
    await admit.load(A);
    assert.equal(admit.state('a').state, 'loaded');
    assert.equal(admit.state('a').failure, null);
  });

  it('refuses to unload a busy model (409) and unloads an idle one on request', async () => {
    const { admit, events } = admission();
    const release = await admit.acquire(A);
    await assert.rejects(admit.unload('a'), rejectsWith(409, 'model_busy'));
    release();
    await admit.unload('a');
    assert.equal(admit.state('a').state, 'unloaded');
    assert.deepEqual(events.evictions, [['a', 'admin']]);
  });

  it('never evicts a pinned model, and unloads idle ones after MODEL_IDLE_UNLOAD_SEC', async () => {
    const { admit, events } = admission({ pinned: new Set(['a']), idleUnloadMs: 30, maxLoaded: 2 });
    (await admit.acquire(A))();
    (await admit.acquire(B))();
    (await admit.acquire(C))(); // room for c: b goes, pinned a stays
    assert.equal(admit.state('a').state, 'loaded');
    assert.equal(admit.state('b').state, 'unloaded');
    await sleep(40);
    admit.unloadIdle();
    await sleep(10);
    assert.equal(admit.state('c').state, 'unloaded');
    assert.equal(admit.state('a').state, 'loaded');
    assert.deepEqual(events.evictions, [
      ['b', 'lru'],
      ['c', 'idle'],
    ]);
  });

  it('follows the router: a model whose process died is unloaded, one it runs already is adopted', async () => {
    const { admit, events } = admission();
    (await admit.acquire(A))();
    const later = Date.now() + 1;
    admit.reconcile([A, B], new Set(['b-id']), later);
    assert.equal(admit.state('a').state, 'unloaded');
    assert.equal(admit.state('b').state, 'loaded');
    assert.deepEqual(events.evictions, [['a', 'failed']]);
    // A list asked for before a load ended says nothing about that load.
    (await admit.acquire(A))();
    admit.reconcile([A], new Set(), later - 1000);
    assert.equal(admit.state('a').state, 'loaded');
  });

  it('loads again at the next request a model the router says is not loaded (its process died between syncs)', async () => {
    const { admit, loader, events } = admission();
    const release = await admit.acquire(A);
    const listedBefore = Date.now() - 1;
    admit.lost('a');
    assert.equal(admit.state('a').state, 'unloaded');
    assert.deepEqual(events.evictions, [['a', 'failed']]);
    // A router list taken before the answer, still showing it running, does not adopt it again.
    admit.reconcile([A], new Set(['a-id']), listedBefore);
    assert.equal(admit.state('a').state, 'unloaded');
    release();
    (await admit.acquire(A))();
    assert.equal(loader.loads(), 2);
    assert.equal(admit.state('a').state, 'loaded');
  });

  it('stops waiting when the client goes away', async () => {
    const { admit, events } = admission();
    const releaseA = await admit.acquire(A);
    const releaseB = await admit.acquire(B);
    const gone = new AbortController();
    const waiting = admit.acquire(C, gone.signal);
    await sleep(10);
    gone.abort();
    await assert.rejects(waiting, rejectsWith(499, 'client_aborted'));
    assert.equal(events.waitingNow, 0);
    releaseA();
    releaseB();
  });

  it('stops waiting for a slow load when the client goes away, while the load goes on for the others', async () => {
    const { admit, loader, events } = admission({}, new StubLoader(300));
    const gone = new AbortController();
    const leaving = admit.acquire(A, gone.signal);
    const staying = admit.acquire(A);
    await sleep(10);
    const abortedAt = performance.now();
    gone.abort();
    await assert.rejects(leaving, rejectsWith(499, 'client_aborted'));
    assert.ok(performance.now() - abortedAt < 100, 'the client that left is answered at once, not after the load');
    assert.equal(events.waitingNow, 1);
    (await staying)();
    assert.equal(loader.loads(), 1);
    assert.equal(events.waitingNow, 0);
  });

  it('starts no load of a model while its files are being deleted: 404 until forgotten, then a fresh start', async () => {
    const { admit, loader } = admission();
    const releaseB = await admit.acquire(B);
    assert.equal(admit.retire(B), false, 'a model in use is not deleted');
    releaseB();
    assert.equal(admit.retire(A), true);
    await assert.rejects(admit.acquire(A), rejectsWith(404, 'model_not_found', /being deleted/));
    assert.equal(loader.calls.includes('load a-id'), false);
    admit.forget('a');
    (await admit.acquire(A))();
    assert.equal(admit.state('a').state, 'loaded');
  });

  it('does not wait at all for a client that left before asking', async () => {
    const { admit, loader } = admission();
    const gone = new AbortController();
    gone.abort();
    await assert.rejects(admit.acquire(A, gone.signal), rejectsWith(499, 'client_aborted'));
    assert.equal(loader.loads(), 0);
  });
});
