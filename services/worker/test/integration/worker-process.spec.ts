import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import {
  createRedis,
  MODEL_PULLS_QUEUE,
  PULL_JOB_OPTIONS,
  pullJobId,
  pullQueuePrefix,
  type PullJobData,
  type PullJobResult,
} from '@gguf-gateway/shared';
import {
  createTestDatabase,
  deleteRedisPrefix,
  FakeHub,
  killProcess,
  repoRoot,
  startProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  waitFor,
  writeTestGguf,
  type ManagedProcess,
  type TestDatabase,
} from '@gguf-gateway/testkit';

const MB = 1024 * 1024;

describe('worker process', function () {
  this.timeout(60_000);
  let hub: FakeHub;
  let db: TestDatabase;
  let dir: string;
  let prefix: string;
  let queue: Queue<PullJobData, PullJobResult>;
  const processes: ManagedProcess[] = [];

  const startWorkerProcess = () => {
    const proc = startProcess(process.execPath, [join(repoRoot, 'services/worker/dist/main.js')], {
      env: {
        PATH: process.env.PATH,
        PORT: '0',
        LOG_LEVEL: 'info',
        REDIS_URL: testSettings.TEST_REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: db.url,
        MODELS_DIR: join(dir, 'models'),
        HF_ENDPOINT: hub.url,
        PULL_ALLOWED_HOSTS: hub.cdnHost,
        PULL_ALLOW_HTTP: 'true',
        // A killed worker's job is handed on after this long (production default: 30 s).
        PULL_LOCK_MS: '1000',
      },
    });
    processes.push(proc);
    return proc;
  };

  before(async () => {
    hub = await FakeHub.start();
    db = await createTestDatabase({ migrate: true });
    dir = await mkdtemp(join(tmpdir(), 'gg-worker-'));
    prefix = testRedisPrefix();
    queue = new Queue(MODEL_PULLS_QUEUE, {
      connection: createRedis(testSettings.TEST_REDIS_URL, 'worker'),
      prefix: pullQueuePrefix(prefix),
    });
  });

  after(async () => {
    for (const proc of processes) await stopProcess(proc);
    await queue.close();
    await (queue.opts.connection as ReturnType<typeof createRedis>).quit();
    await deleteRedisPrefix(prefix);
    await hub.stop();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('resumes from the partial file with a Range request after the worker is SIGKILLed mid-download', async () => {
    const path = join(dir, 'served.gguf');
    await writeTestGguf(path, 64 * MB, 7);
    const model = await hub.addFile('acme/kill-GGUF', 'kill.gguf', { path });
    hub.throttle(8 * MB);
    const source = { repo: 'acme/kill-GGUF', file: 'kill.gguf' };
    const job = await queue.add('pull', { source }, { ...PULL_JOB_OPTIONS, jobId: pullJobId(source) });

    const first = startWorkerProcess();
    const partial = join(dir, 'models', '.partial', 'kill.gguf');
    await waitFor('4 MB on disk', async () => existsSync(partial) && (await stat(partial)).size > 4 * MB, 20_000);
    await killProcess(first);
    const onDisk = (await stat(partial)).size;
    assert.ok(onDisk < model.size, 'killed before the end');

    hub.throttle(null);
    startWorkerProcess();
    const state = await waitFor(
      'the pull to finish in the new worker',
      async () => {
        const s = await (await queue.getJob(job.id!))?.getState();
        return s === 'completed' || s === 'failed' ? s : null;
      },
      30_000,
    );
    const done = (await queue.getJob(job.id!))!;
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    const gets = hub.cdnRequests().filter((r) => r.method === 'GET');
    assert.equal(gets.length, 2);
    assert.equal(gets[1]!.headers.range, `bytes=${onDisk}-`);
    assert.equal((await stat(join(dir, 'models', 'kill.gguf'))).size, model.size);
  });
});
