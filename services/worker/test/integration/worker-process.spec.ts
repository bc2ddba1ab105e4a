import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import {
  createPgPool,
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

  const startWorkerProcess = (extra: Record<string, string> = {}) => {
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
        ...extra,
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

  // Each test's workers stop with it: a worker left running would take the next test's job.
  afterEach(async () => {
    for (const proc of processes.splice(0)) await stopProcess(proc);
  });

  after(async () => {
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

  it('resumes a parallel download after a SIGKILL by fetching only the ranges its saved state lacks, each with If-Range', async () => {
    const path = join(dir, 'served-ranges.gguf');
    await writeTestGguf(path, 48 * MB, 8);
    const model = await hub.addFile('acme/kill-ranges-GGUF', 'kill-ranges.gguf', { path });
    hub.throttle(2 * MB);
    const source = { repo: 'acme/kill-ranges-GGUF', file: 'kill-ranges.gguf' };
    const job = await queue.add('pull', { source }, { ...PULL_JOB_OPTIONS, jobId: pullJobId(source) });
    const parallel = { PULL_PARALLEL_MIN_BYTES: String(MB), PULL_CONNECTIONS: '4' };

    const first = startWorkerProcess(parallel);
    const state = join(dir, 'models', '.partial', '.kill-ranges.gguf.ranges');
    const saved = async () => {
      const raw = await readFile(state, 'utf8').catch(() => null);
      return raw === null ? null : (JSON.parse(raw) as { pieces: { start: number; end: number; done: number }[] });
    };
    await waitFor('a third of the file saved as done', async () => {
      const ranges = await saved();
      return ranges && ranges.pieces.reduce((sum, p) => sum + p.done, 0) > model.size / 3 ? ranges : null;
    });
    await killProcess(first);
    const atKill = (await saved())!;
    const missing = atKill.pieces.filter((p) => p.done < p.end - p.start);
    const requestsBefore = hub.cdnRequests().length;

    hub.throttle(null);
    startWorkerProcess(parallel);
    const end = await waitFor(
      'the pull to finish in the new worker',
      async () => {
        const s = await (await queue.getJob(job.id!))?.getState();
        return s === 'completed' || s === 'failed' ? s : null;
      },
      30_000,
    );
    const done = (await queue.getJob(job.id!))!;
    assert.equal(end, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    const resumed = hub
      .cdnRequests()
      .slice(requestsBefore)
      .filter((r) => r.method === 'GET');
    // The state may have moved on between its last save and the kill: what it says is missing is
    // asked for, to the byte, and nothing else.
    assert.deepEqual(
      resumed.map((r) => r.headers.range).sort(),
      missing.map((p) => `bytes=${p.start + p.done}-${p.end - 1}`).sort(),
    );
    assert.ok(resumed.every((r) => r.headers['if-range'] === `"${model.sha256}"`));
    assert.equal(existsSync(state), false, 'the range state goes with the partial file');
  });

  it('records a pull as failed in pull_jobs when BullMQ fails it for stalling too often, leaving no row active', async () => {
    const path = join(dir, 'served-stall.gguf');
    await writeTestGguf(path, 16 * MB, 9);
    await hub.addFile('acme/crashy-GGUF', 'crashy.gguf', { path });
    hub.throttle(1 * MB);
    const source = { repo: 'acme/crashy-GGUF', file: 'crashy.gguf' };
    const job = await queue.add('pull', { source }, { ...PULL_JOB_OPTIONS, jobId: pullJobId(source) });
    const pool = createPgPool(db.url, 1);
    try {
      const rowState = async () =>
        (await pool.query<{ state: string }>('SELECT state FROM pull_jobs WHERE job_id = $1', [job.id])).rows[0]
          ?.state ?? null;
      const first = startWorkerProcess();
      await waitFor('the pull to be active', async () => ((await rowState()) === 'active' ? true : null));
      await killProcess(first);
      // Three crashes before this one: the count BullMQ keeps (maxStalledCount 3) is set as they would have left it.
      const redis = createRedis(testSettings.TEST_REDIS_URL, 'worker');
      await redis.hset(`${pullQueuePrefix(prefix)}:${MODEL_PULLS_QUEUE}:${job.id}`, 'stc', '3');
      await redis.quit();

      startWorkerProcess();
      await waitFor('BullMQ to fail the job', async () =>
        (await queue.getJobState(job.id!)) === 'failed' ? true : null,
      );
      const done = (await queue.getJob(job.id!))!;
      assert.equal(done.failedReason, 'job stalled more than allowable limit');
      const rows = await waitFor('pull_jobs to follow', async () => {
        const { rows: r } = await pool.query<{ state: string; error: string; finished: boolean }>(
          'SELECT state, error, finished_at IS NOT NULL AS finished FROM pull_jobs WHERE job_id = $1',
          [job.id],
        );
        return r.every((row) => row.state !== 'active') ? r : null;
      });
      assert.deepEqual(rows, [{ state: 'failed', error: 'job stalled more than allowable limit', finished: true }]);
    } finally {
      hub.throttle(null);
      await pool.end();
    }
  });
});
