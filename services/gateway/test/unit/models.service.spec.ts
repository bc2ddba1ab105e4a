import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Response } from 'express';
import { ApiError, createLogger } from '@gguf-gateway/shared';
import { ModelAdmission, type AdmissionEvents, type ModelLoader } from '../../src/models/model-admission.js';
import { ModelsService } from '../../src/models/models.service.js';
import { createModelUtilisationMetrics } from '../../src/models/models.metrics.js';
import { Registry } from 'prom-client';

const MB = 1024 * 1024;
const model = { name: 'alpha', routerId: 'alpha', bytes: 100 * MB };

/** A router stand-in whose loads take a while. */
const slowLoader: ModelLoader & { loads: number } = {
  loads: 0,
  async load() {
    this.loads += 1;
    await new Promise((resolve) => setTimeout(resolve, 200));
  },
  async unload() {},
};
const quiet: AdmissionEvents = { loaded() {}, evicted() {}, waiting() {}, loadedCount() {} };

const catalogModel = {
  name: 'alpha',
  routerId: 'alpha',
  aliases: [],
  paths: ['/models/alpha.gguf'],
  sizeBytes: 100 * MB,
  architecture: 'llama',
  quantization: 'F32',
  contextLength: 256,
  memory: null,
  failure: null,
  routerStatus: null,
};
/** MODELS_DIR stand-in whose unlink takes a while: the window a concurrent request falls into. */
const slowFiles = {
  beingPulled: () => false,
  holds: () => true,
  remove: () => new Promise((resolve) => setTimeout(resolve, 100)),
};
const catalog = { resolve: async () => catalogModel, refresh: async () => undefined };

/** Admission as the service builds it, with a memory budget no test here reaches and nothing pinned. */
function admissionFor(
  loader: ModelLoader,
  settings: { maxLoaded: number; capacityWaitMs: number; loadTimeoutMs: number },
): ModelAdmission {
  return new ModelAdmission(loader, { memoryBytes: 1024 * MB, idleUnloadMs: 0, pinned: new Set(), ...settings }, quiet);
}

function service(loader: ModelLoader, files: unknown = null): ModelsService {
  const admission = admissionFor(loader, { maxLoaded: 1, capacityWaitMs: 2000, loadTimeoutMs: 5000 });
  // The router backend is not reached: only admission, the catalog and the files take part.
  return new ModelsService(
    catalog as never,
    admission,
    files as never,
    null as never,
    { names: [], resolved: new Set() },
    null,
    createLogger({ service: 'test', level: 'silent' }),
  );
}

describe('models service', () => {
  it('takes no slot and starts no load for a client that left before its turn came', async () => {
    // The response closed already (the client left while its key was being checked): its 'close' is past.
    const res = Object.assign(new EventEmitter(), { destroyed: true }) as unknown as Response;
    await assert.rejects(service(slowLoader).acquire(model, res), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 499);
      return true;
    });
    assert.equal(slowLoader.loads, 0);
  });

  it('loads a pinned model again after its process died, without waiting for a request', async function () {
    this.timeout(10_000);
    const running = new Set<string>();
    const loader: ModelLoader & { loads: number } = {
      loads: 0,
      async load(id) {
        this.loads += 1;
        running.add(id);
      },
      async unload(id) {
        running.delete(id);
      },
    };
    const routerCatalog = {
      routerReached: true,
      routerListedAt: 0,
      refresh: async () => {
        routerCatalog.routerListedAt = Date.now();
      },
      list: () => [{ ...catalogModel, routerStatus: running.has('alpha') ? 'loaded' : 'unloaded' }],
      find: () => catalogModel,
    };
    const models = new ModelsService(
      routerCatalog as never,
      admissionFor(loader, { maxLoaded: 2, capacityWaitMs: 1000, loadTimeoutMs: 1000 }),
      null as never,
      null as never,
      { names: ['alpha'], resolved: new Set() },
      null,
      createLogger({ service: 'test', level: 'silent' }),
    );
    models.start();
    try {
      await waitUntil(() => models.state('alpha').state === 'loaded');
      assert.equal(loader.loads, 1);
      // llama-server restarted: its child is gone. The next sync sees it and loads it again.
      running.clear();
      await waitUntil(() => loader.loads === 2 && models.state('alpha').state === 'loaded');
    } finally {
      models.stop();
    }
  });

  it('refuses to delete a model through an alias, and removes nothing', async () => {
    let removed = 0;
    const models = service(slowLoader, { ...slowFiles, remove: async () => void (removed += 1) });
    await assert.rejects(models.remove('assistant'), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 400);
      assert.equal(err.code, 'model_alias');
      assert.match(err.message, /'assistant' is an alias of the model 'alpha': delete the model by its name/);
      return true;
    });
    assert.equal(removed, 0);
  });

  it('loads no model whose files are being deleted: a request meanwhile gets 404', async () => {
    const models = service(slowLoader, slowFiles);
    const res = new EventEmitter() as unknown as Response;
    const deleting = models.remove('alpha');
    await new Promise((resolve) => setTimeout(resolve, 10));
    await assert.rejects(models.acquire(model, res), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 404);
      return true;
    });
    assert.deepEqual(await deleting, { name: 'alpha', deleted: true, paths: ['/models/alpha.gguf'] });
    assert.equal(slowLoader.loads, 0);
  });

  it("reports each catalog model's requests in flight and slots, and drops a model that left the catalog", async function () {
    this.timeout(10_000);
    const running = new Set<string>();
    const loader: ModelLoader = {
      async load(id) {
        running.add(id);
      },
      async unload(id) {
        running.delete(id);
      },
    };
    let onDisk = [catalogModel];
    const routerCatalog = {
      routerReached: true,
      routerListedAt: 0,
      refresh: async () => {
        routerCatalog.routerListedAt = Date.now();
      },
      list: () => onDisk.map((m) => ({ ...m, routerStatus: running.has(m.routerId) ? 'loaded' : 'unloaded' })),
      find: () => catalogModel,
    };
    const admission = admissionFor(loader, { maxLoaded: 2, capacityWaitMs: 1000, loadTimeoutMs: 1000 });
    const models = new ModelsService(
      routerCatalog as never,
      admission,
      null as never,
      null as never,
      { names: [], resolved: new Set() },
      null,
      createLogger({ service: 'test', level: 'silent' }),
      async (id) => ({ busy: running.has(id) ? 1 : 0, total: 4 }),
    );
    const registry = new Registry();
    createModelUtilisationMetrics(registry, () => models.utilisation());
    const scrape = async () => (await registry.metrics()).split('\n').filter((l) => l.startsWith('gateway_model_'));

    assert.deepEqual(await scrape(), [
      'gateway_model_requests_in_flight{model="alpha"} 0',
      'gateway_model_slots_busy{model="alpha"} 0',
      'gateway_model_slots{model="alpha"} 0',
    ]);
    const release = await admission.acquire(model);
    models.start();
    try {
      await waitUntil(() => models.utilisation()[0]!.slots.total === 4);
      assert.deepEqual(await scrape(), [
        'gateway_model_requests_in_flight{model="alpha"} 1',
        'gateway_model_slots_busy{model="alpha"} 1',
        'gateway_model_slots{model="alpha"} 4',
      ]);
      release();
      // Its file was deleted: its labels go with it.
      onDisk = [];
      assert.deepEqual(await scrape(), []);
    } finally {
      models.stop();
    }
  });
});

async function waitUntil(done: () => boolean, timeoutMs = 8000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
