import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import { createLogger, type PullJob, type PullJobData, type PullJobView } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';
import { ensureDefaultModel } from '../../src/default-model.service.js';
import type { DefaultModelPulls } from '../../src/default-model.service.js';

/** The worker's queue as the model gate sees it: the statuses it answers, in order. */
function fakePulls(statuses: Array<PullJobView | Error>) {
  const enqueued: PullJobData[] = [];
  let closed = false;
  const repo = {
    enqueue: async (data: PullJobData) => (
      enqueued.push(data),
      { job: { id: 'job-1' } as PullJob, deduplicated: false }
    ),
    viewOf: async () => {
      const next = statuses.length > 1 ? statuses.shift()! : statuses[0]!;
      if (next instanceof Error) throw next;
      return next;
    },
    close: async () => void (closed = true),
  };
  return { repo: repo as DefaultModelPulls, enqueued, closed: () => closed };
}

const completed = (path: string) =>
  ({ state: 'completed', progress: null, error: null, result: { path } }) as unknown as PullJobView;

describe('default model gate', () => {
  let dir: string;
  let logs: LogCapture;
  const deps = (repo: DefaultModelPulls) => ({
    logger: createLogger({ service: 'orchestrator', destination: logs }),
    openPulls: () => repo,
    signal: AbortSignal.timeout(5000),
    pollMs: 5,
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'default-model-'));
    logs = new LogCapture();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const split = { modelRepo: 'org/model', modelFile: 'model-00001-of-00002.gguf' };

  it('enqueues the pull again when only part 1 of a split model is on disk', async () => {
    const first = join(dir, 'model-00001-of-00002.gguf');
    await writeTinyLlama(first);
    const pulls = fakePulls([completed(first)]);
    const model = await ensureDefaultModel({ modelsDir: dir, ...split }, deps(pulls.repo));
    assert.equal(pulls.enqueued.length, 1, 'a missing part 2 must be pulled');
    assert.equal(model?.path, first);
    assert.ok(pulls.closed());
  });

  it('uses a split model without pulling when every part is on disk', async () => {
    await writeTinyLlama(join(dir, 'model-00001-of-00002.gguf'));
    await writeTinyLlama(join(dir, 'model-00002-of-00002.gguf'));
    const pulls = fakePulls([new Error('no pull expected')]);
    const model = await ensureDefaultModel({ modelsDir: dir, ...split }, deps(pulls.repo));
    assert.equal(pulls.enqueued.length, 0);
    assert.equal(model?.path, join(dir, 'model-00001-of-00002.gguf'));
  });

  it('keeps polling the pull through a Redis connection error', async () => {
    const first = join(dir, 'model-00001-of-00002.gguf');
    await writeTinyLlama(first);
    const pulls = fakePulls([new Error('Connection is closed.'), completed(first)]);
    const model = await ensureDefaultModel({ modelsDir: dir, ...split }, deps(pulls.repo));
    assert.equal(model?.path, first);
    assert.ok(logs.records().some((r) => r.msg === 'model pull status unavailable; retrying'));
  });

  it('sizes a split model by all of its parts, for the GPU plan', async () => {
    const parts = [1, 2].map((i) => join(dir, `model-0000${i}-of-00002.gguf`));
    for (const part of parts) await writeTinyLlama(part);
    const model = await ensureDefaultModel({ modelsDir: dir, modelPath: parts[0] }, deps(fakePulls([]).repo));
    const total = parts.reduce((sum, part) => sum + statSync(part).size, 0);
    assert.equal(model?.bytes, total);
    assert.ok(model.bytes > model.info.fileBytes);
  });
});
