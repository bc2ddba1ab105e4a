import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { writeTinyLlama } from '@gguf-gateway/gguf';
import {
  MODEL_PULLS_QUEUE,
  PULL_JOB_OPTIONS,
  PullCancelMarks,
  PullQueue,
  createLogger,
  pullJobId,
  pullQueuePrefix,
  type PullJobData,
} from '@gguf-gateway/shared';
import { LogCapture, deleteRedisPrefix, testRedisPrefix, testSettings, waitFor } from '@gguf-gateway/testkit';
import { ensureDefaultModel } from '../../src/default-model.service.js';

const source = { repo: 'org/model', file: 'model.gguf' };

describe('default model pull after a cancelled pull of the same model', () => {
  let prefix: string;
  let dir: string;
  let redis: Redis;
  let worker: Worker<PullJobData>;

  beforeEach(async () => {
    prefix = testRedisPrefix();
    dir = mkdtempSync(join(tmpdir(), 'default-model-pull-'));
    redis = new Redis(testSettings.TEST_REDIS_URL, { maxRetriesPerRequest: null });
    // Stands in for the worker service: it stops a job whose cancel mark is set (as the real one does
    // at its first progress report), and otherwise lands the model.
    worker = new Worker<PullJobData>(
      MODEL_PULLS_QUEUE,
      async (job: Job<PullJobData>) => {
        if (await new PullCancelMarks(redis, prefix).isSet(job.id!)) throw new UnrecoverableError('cancelled');
        const path = join(dir, 'model.gguf');
        await writeTinyLlama(path);
        return { path };
      },
      { connection: redis.duplicate(), prefix: pullQueuePrefix(prefix) },
    );
    worker.on('error', () => undefined);
  });

  afterEach(async () => {
    await worker.close();
    redis.disconnect();
    await deleteRedisPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  it('pulls the default model although an admin cancelled an earlier pull of it', async () => {
    // An admin pulled the default model's source and cancelled it: the job ends as cancelled, and
    // its cancel mark stays for a day.
    const jobId = pullJobId(source);
    const queue = new Queue<PullJobData>(MODEL_PULLS_QUEUE, { connection: redis, prefix: pullQueuePrefix(prefix) });
    await new PullCancelMarks(redis, prefix).set(jobId);
    const cancelled = await queue.add('pull', { source }, { ...PULL_JOB_OPTIONS, jobId });
    await waitFor('the cancelled pull to end', async () => (await cancelled.isFailed()) || null, 5000, 20);
    await queue.close();

    const model = await ensureDefaultModel(
      { modelsDir: dir, modelRepo: source.repo, modelFile: source.file },
      {
        logger: createLogger({ service: 'orchestrator', destination: new LogCapture() }),
        openPulls: () => PullQueue.connect(testSettings.TEST_REDIS_URL, prefix, () => undefined),
        signal: AbortSignal.timeout(10_000),
        pollMs: 20,
      },
    );
    assert.equal(model?.path, join(dir, 'model.gguf'));
  });
});
