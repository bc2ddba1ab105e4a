import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, type PullProgress } from '@gguf-gateway/shared';
import { FakeHub, LogCapture, writeTestGguf } from '@gguf-gateway/testkit';
import { AllowedHosts } from '../../src/allowed-hosts.js';
import { HubClient } from '../../src/hub.client.js';
import { ModelFilesRepository } from '../../src/model-files.repository.js';
import { ModelPullService, PullCancelledError } from '../../src/model-pull.service.js';
import type { ModelsRepository } from '../../src/models.repository.js';

describe('model pull service', function () {
  this.timeout(20_000);
  let hub: FakeHub;
  let dir: string;

  before(async () => {
    hub = await FakeHub.start();
    dir = await mkdtemp(join(tmpdir(), 'gg-pull-service-'));
  });

  after(async () => {
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('lands nothing when the cancel comes in while the last file is being verified', async () => {
    const source = join(dir, 'source.gguf');
    await writeTestGguf(source, 1024 * 1024, 7);
    await hub.addFile('acme/late-GGUF', 'late.gguf', { path: source });
    const files = new ModelFilesRepository(join(dir, 'models'));
    await files.prepare();
    const saved: unknown[] = [];
    const service = new ModelPullService({
      hub: new HubClient({
        endpoint: hub.url,
        token: undefined,
        allowedHosts: new AllowedHosts([hub.cdnHost]),
        allowHttp: true,
        resolveTimeoutMs: 5_000,
      }),
      files,
      models: { saveModel: async (model: unknown) => void saved.push(model) } as unknown as ModelsRepository,
      logger: createLogger({ service: 'worker', destination: new LogCapture() }),
      stallMs: 5_000,
      freeSpaceMarginBytes: 0,
      progressIntervalMs: 100,
      connections: 8,
      parallelMinBytes: 64 * 1024 * 1024,
    });
    // The cancel mark lands just after the check that comes with the 'verifying' report.
    let checksSinceVerifying: number | null = null;
    const pull = service.pull({
      id: 'pull-late',
      data: { source: { repo: 'acme/late-GGUF', file: 'late.gguf' } },
      progress: async (p: PullProgress) => {
        if (p.phase === 'verifying') checksSinceVerifying ??= 0;
      },
      cancelled: async () => checksSinceVerifying !== null && checksSinceVerifying++ > 0,
    });
    await assert.rejects(pull, PullCancelledError);
    assert.deepEqual(saved, [], 'not recorded in models');
    assert.equal(existsSync(files.finalPath('late.gguf')), false, 'not in MODELS_DIR');
    assert.equal(existsSync(files.partialPath('late.gguf')), false, 'partial removed');
  });
});
