import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Response } from 'express';
import { ApiError, createLogger } from '@gguf-gateway/shared';
import { ModelAdmission, type AdmissionEvents, type ModelLoader } from '../../src/models/model-admission.js';
import { ModelsService } from '../../src/models/models.service.js';

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

function service(loader: ModelLoader): ModelsService {
  const admission = new ModelAdmission(
    loader,
    {
      maxLoaded: 1,
      memoryBytes: 1024 * MB,
      capacityWaitMs: 2000,
      loadTimeoutMs: 5000,
      idleUnloadMs: 0,
      pinned: new Set(),
    },
    quiet,
  );
  // Only admission takes part in a slot; the catalog, files and router are not reached.
  return new ModelsService(
    null as never,
    admission,
    null as never,
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
});
