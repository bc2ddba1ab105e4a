import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { pullCancelKey } from '@gguf-gateway/shared';
import {
  createTestDatabase,
  FakeHub,
  mountSmallVolume,
  testSettings,
  waitFor,
  writeNotGguf,
  writeTestGguf,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { startWorker, type RunningWorker } from './pull-harness.js';

const TOKEN = 'hf_test_token_that_must_not_leak';
const MB = 1024 * 1024;

/** Writes zeros to `path` until its filesystem is full. */
async function fillUp(path: string): Promise<void> {
  const file = await open(path, 'w');
  const zeros = Buffer.alloc(256 * 1024);
  try {
    for (;;) await file.write(zeros);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await file.close();
  }
}

describe('model pull worker', function () {
  this.timeout(60_000);
  let hub: FakeHub;
  let db: TestDatabase;
  let sources: string;
  let worker: RunningWorker | undefined;
  let seed = 10;

  /** A fresh GGUF of `bytes` on the fake hub (a new seed each time, so a new sha256). */
  async function serve(repo: string, file: string, bytes: number, spec: Parameters<FakeHub['addFile']>[2] = {}) {
    const path = join(sources, `${seed}.gguf`);
    await writeTestGguf(path, bytes, seed++);
    return { path, ...(await hub.addFile(repo, file, { path, ...spec })) };
  }

  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: db.url,
    HF_ENDPOINT: hub.url,
    HF_TOKEN: TOKEN,
    PULL_ALLOWED_HOSTS: hub.cdnHost,
    ...extra,
  });

  const blobGets = (sha256: string) => hub.cdnRequests().filter((r) => r.method === 'GET' && r.url.includes(sha256));

  before(async () => {
    hub = await FakeHub.start({ token: TOKEN });
    db = await createTestDatabase({ migrate: true });
    sources = await mkdtemp(join(tmpdir(), 'gg-hub-'));
  });

  afterEach(async () => {
    hub.throttle(null);
    hub.onRequest = null;
    await worker?.close();
    worker = undefined;
  });

  after(async () => {
    await hub.stop();
    await db.drop();
    await rm(sources, { recursive: true, force: true });
  });

  it('lands a 256 MB GGUF verified and recorded, and never sends the token to the CDN', async () => {
    const model = await serve('acme/big-GGUF', 'big-f32.gguf', 256 * MB);
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { repo: 'acme/big-GGUF', file: 'big-f32.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    assert.equal(done.returnvalue.bytes, model.size);
    assert.equal((await stat(join(worker.modelsDir, 'big-f32.gguf'))).size, model.size);
    assert.deepEqual(await readdir(join(worker.modelsDir, '.partial')), []);
    assert.deepEqual(done.progress, {
      phase: 'done',
      bytesDone: model.size,
      bytesTotal: model.size,
      bytesPerSec: (done.progress as { bytesPerSec: number }).bytesPerSec,
      etaSec: 0,
    });

    const { rows } = await worker.pool.query('SELECT * FROM models WHERE name = $1', ['big-f32.gguf']);
    assert.equal(rows[0].sha256, model.sha256);
    assert.equal(rows[0].bytes, model.size);
    assert.equal(rows[0].architecture, 'llama');
    assert.equal(rows[0].context_length, 4096);
    const history = await worker.pool.query('SELECT state, bytes_done, sha256 FROM pull_jobs WHERE job_id = $1', [
      job.id,
    ]);
    assert.deepEqual(history.rows, [{ state: 'completed', bytes_done: model.size, sha256: model.sha256 }]);

    const hubHits = hub.requests.filter((r) => r.server === 'hub' && r.url.includes('big-f32'));
    assert.ok(hubHits.length > 0 && hubHits.every((r) => r.headers.authorization === `Bearer ${TOKEN}`));
    // Above PULL_PARALLEL_MIN_BYTES: ranges that tile the file exactly once, over PULL_CONNECTIONS connections.
    const gets = blobGets(model.sha256);
    const ranges = gets
      .map(
        (r) =>
          /^bytes=(\d+)-(\d+)$/
            .exec(r.headers.range ?? '')!
            .slice(1)
            .map(Number) as [number, number],
      )
      .sort((x, y) => x[0] - y[0]);
    let tiled = 0;
    for (const [from, to] of ranges) {
      assert.equal(from, tiled);
      tiled = to + 1;
    }
    assert.equal(tiled, model.size);
    assert.equal(new Set(gets.map((r) => r.remotePort)).size, 8);
    assert.ok(
      hub.cdnRequests().every((r) => r.headers.authorization === undefined && !JSON.stringify(r).includes(TOKEN)),
    );
    assert.ok(!worker.logs.text().includes(TOKEN));
    const metrics = await worker.registry.metrics();
    assert.match(metrics, /model_pull_jobs_total\{result="completed",service="worker"\} 1/);
    assert.match(metrics, new RegExp(`model_pull_bytes_total\\{service="worker"\\} ${model.size}`));
  });

  it('resumes with Range: bytes=<bytes on disk>- after the server drops the connection at 40%', async () => {
    const size = 8 * MB;
    const dropAt = Math.floor(size * 0.4);
    const model = await serve('acme/drop-GGUF', 'drop.gguf', size, { dropAtByte: dropAt });
    worker = await startWorker(env());
    const partial = join(worker.modelsDir, '.partial', 'drop.gguf');
    const onDiskAtRequest: number[] = [];
    hub.onRequest = (r) => {
      if (r.server === 'cdn' && r.method === 'GET')
        onDiskAtRequest.push(existsSync(partial) ? statSync(partial).size : 0);
    };
    const job = await worker.enqueue({ source: { repo: 'acme/drop-GGUF', file: 'drop.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    const gets = blobGets(model.sha256);
    assert.equal(gets.length, 2);
    assert.equal(gets[0]!.headers.range, undefined);
    const kept = onDiskAtRequest[1]!;
    assert.equal(gets[1]!.headers.range, `bytes=${kept}-`);
    assert.ok(kept > dropAt - 256 * 1024 && kept <= dropAt, `kept ${kept} of the ${dropAt} bytes sent before the drop`);
    assert.equal(done.attemptsMade, 1, 'resumed within the first attempt, not by a job retry');
    assert.match(worker.logs.text(), /download interrupted, resuming/);
  });

  it('fetches a dropped range again on its own, from where it stopped to the end of that range only', async () => {
    const size = 16 * MB;
    const dropAt = 5 * MB + MB / 2;
    const model = await serve('acme/range-drop-GGUF', 'range-drop.gguf', size, { dropAtByte: dropAt });
    const sentBefore = hub.bytesSent;
    worker = await startWorker(env({ PULL_PARALLEL_MIN_BYTES: String(MB) }));
    const job = await worker.enqueue({ source: { repo: 'acme/range-drop-GGUF', file: 'range-drop.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    assert.equal(done.attemptsMade, 1, 'resumed within the first attempt, not by a job retry');
    // 1 MiB pieces: the one with the drop (5-6 MiB) is asked for again from what reached the disk.
    const resumed = blobGets(model.sha256)
      .map(
        (r) =>
          /^bytes=(\d+)-(\d+)$/
            .exec(r.headers.range ?? '')!
            .slice(1)
            .map(Number) as [number, number],
      )
      .filter(([from, to]) => to === 6 * MB - 1 && from > 5 * MB);
    assert.equal(resumed.length, 1);
    const [from] = resumed[0]!;
    assert.ok(from <= dropAt, `resumed from ${from}, the drop was at ${dropAt}`);
    assert.equal(hub.bytesSent - sentBefore, model.size + (dropAt - from), 'nothing else fetched twice');
    assert.ok(
      blobGets(model.sha256)
        .slice(1)
        .every((r) => r.headers['if-range'] === `"${model.sha256}"`),
      'every range after the first names the file it belongs to',
    );
  });

  it('downloads over one connection, from byte 0, when the server ignores Range', async () => {
    const model = await serve('acme/no-ranges-GGUF', 'no-ranges.gguf', 8 * MB, { noRanges: true });
    worker = await startWorker(env({ PULL_PARALLEL_MIN_BYTES: String(MB) }));
    const job = await worker.enqueue({ source: { repo: 'acme/no-ranges-GGUF', file: 'no-ranges.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    const gets = blobGets(model.sha256);
    assert.equal(gets.length, 2, 'one ranged request finds out, then one stream');
    assert.match(gets[0]!.headers.range ?? '', /^bytes=0-\d+$/);
    assert.equal(gets[1]!.headers.range, undefined);
  });

  it('drops a stalled connection after PULL_STALL_TIMEOUT_MS and resumes where it stopped', async () => {
    const size = 4 * MB;
    const stallAt = Math.floor(size / 2);
    const model = await serve('acme/stall-GGUF', 'stall.gguf', size, { stallAtByte: stallAt });
    worker = await startWorker(env({ PULL_STALL_TIMEOUT_MS: '300' }));
    const job = await worker.enqueue({ source: { repo: 'acme/stall-GGUF', file: 'stall.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    assert.equal(blobGets(model.sha256)[1]?.headers.range, `bytes=${stallAt}-`);
    assert.equal(done.attemptsMade, 1, 'resumed within the first attempt, not by a job retry');
  });

  it('fails with want/got and removes the partial file when the bytes are corrupted', async () => {
    const model = await serve('acme/bad-GGUF', 'bad.gguf', 1 * MB, { corrupt: true });
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { repo: 'acme/bad-GGUF', file: 'bad.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'failed');
    assert.match(done.failedReason, new RegExp(`sha256 mismatch for bad.gguf: want ${model.sha256} got [0-9a-f]{64}`));
    assert.equal(done.attemptsMade, 1, 'a sha mismatch is not retried');
    assert.match(worker.logs.text(), /"state":"failed".*"msg":"pull ended"/);
    assert.equal(existsSync(join(worker.modelsDir, '.partial', 'bad.gguf')), false);
    assert.equal(existsSync(join(worker.modelsDir, 'bad.gguf')), false);
    const history = await worker.pool.query('SELECT state, error FROM pull_jobs WHERE job_id = $1', [job.id]);
    assert.equal(history.rows[0].state, 'failed');
    assert.match(history.rows[0].error, /sha256 mismatch/);
  });

  it('fails a pull that fills the disk, saying how much space it needs, keeps no partial file, and keeps the worker running', async () => {
    const volume = await mountSmallVolume(24 * MB);
    if (!volume) {
      // No root and no sudo: nothing can be mounted. /dev/full, where every write fails with ENOSPC as
      // on a full disk, stands in for the volume, with a file small enough for one stream.
      await serve('acme/full-GGUF', 'full.gguf', 4 * MB);
      worker = await startWorker(env());
      const partial = join(worker.modelsDir, '.partial', 'full.gguf');
      await mkdir(dirname(partial), { recursive: true });
      await symlink('/dev/full', partial);
      const job = await worker.enqueue({ source: { repo: 'acme/full-GGUF', file: 'full.gguf' } });
      const { state, job: done } = await worker.finished(job.id!);
      assert.equal(state, 'failed');
      assert.match(done.failedReason, /^disk full \(ENOSPC\) writing full\.gguf: the pull needs \d+ bytes/);
      assert.deepEqual(await readdir(dirname(partial)), []);
      return;
    }
    try {
      const model = await serve('acme/full-GGUF', 'full.gguf', 16 * MB);
      hub.throttle(MB / 2);
      worker = await startWorker(
        env({ MODELS_DIR: volume.dir, PULL_FREE_SPACE_MARGIN_BYTES: '0', PULL_PARALLEL_MIN_BYTES: String(MB) }),
      );
      const partial = join(volume.dir, '.partial', 'full.gguf');
      const job = await worker.enqueue({ source: { repo: 'acme/full-GGUF', file: 'full.gguf' } });
      // Once the download is under way, another tenant of the volume takes all the space left.
      await waitFor('bytes on disk', async () => existsSync(partial) && (await stat(partial)).blocks * 512 > 2 * MB);
      const filler = join(dirname(volume.dir), 'filler');
      await fillUp(filler);
      const { state, job: done } = await worker.finished(job.id!);
      assert.equal(state, 'failed');
      assert.match(
        done.failedReason,
        new RegExp(
          `^disk full \\(ENOSPC\\) writing full\\.gguf: the pull needs ${model.size} bytes for it plus 0 \\(PULL_FREE_SPACE_MARGIN_BYTES\\), and MODELS_DIR has \\d+ bytes free with the partial file removed$`,
        ),
      );
      assert.equal(done.attemptsMade, 1, 'a full disk is not retried');
      assert.deepEqual(await readdir(join(volume.dir, '.partial')), [], 'no partial file, no range state');

      await rm(filler);
      hub.throttle(null);
      const next = await serve('acme/after-full-GGUF', 'after-full.gguf', 1 * MB);
      const after = await worker.enqueue({ source: { repo: 'acme/after-full-GGUF', file: 'after-full.gguf' } });
      const second = await worker.finished(after.id!);
      assert.equal(second.state, 'completed', second.job.failedReason);
      assert.equal(second.job.returnvalue.sha256, next.sha256);
    } finally {
      await worker?.close();
      worker = undefined;
      await volume.unmount();
    }
  });

  it('rejects a file that is not GGUF and keeps nothing of it', async () => {
    const path = join(sources, 'not-a-model.bin');
    await writeNotGguf(path);
    await hub.addFile('acme/fake-GGUF', 'fake.gguf', { path });
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { repo: 'acme/fake-GGUF', file: 'fake.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'failed');
    assert.match(done.failedReason, /fake\.gguf is not a usable GGUF file \(not_gguf/);
    assert.deepEqual((await readdir(worker.modelsDir)).sort(), ['.partial']);
    assert.deepEqual(await readdir(join(worker.modelsDir, '.partial')), []);
  });

  it('fails before downloading when the disk lacks room, naming what it needs and what is free', async () => {
    const model = await serve('acme/huge-GGUF', 'huge.gguf', 1 * MB);
    worker = await startWorker(env({ PULL_FREE_SPACE_MARGIN_BYTES: String(2 ** 50) }));
    const job = await worker.enqueue({ source: { repo: 'acme/huge-GGUF', file: 'huge.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'failed');
    assert.match(
      done.failedReason,
      /not enough disk space in MODELS_DIR: \d+ bytes needed \(\d+ to download \+ \d+ margin\), \d+ bytes free/,
    );
    assert.equal(blobGets(model.sha256).length, 0);
  });

  it('rejects a redirect to a host that is not allowed, without contacting it', async () => {
    const elsewhere = await FakeHub.start();
    try {
      const path = join(sources, 'elsewhere.gguf');
      await writeTestGguf(path, 64 * 1024, seed++);
      const { sha256 } = await elsewhere.addFile('x/y', 'm.gguf', { path });
      await hub.addFile('acme/moved-GGUF', 'moved.gguf', { path, redirectTo: elsewhere.blobUrl(sha256) });
      worker = await startWorker(env());
      const job = await worker.enqueue({ source: { repo: 'acme/moved-GGUF', file: 'moved.gguf' } });
      const { state, job: done } = await worker.finished(job.id!);
      assert.equal(state, 'failed');
      assert.equal(done.failedReason, `download host ${elsewhere.cdnHost} is not in PULL_ALLOWED_HOSTS`);
      assert.equal(elsewhere.requests.length, 0);
    } finally {
      await elsewhere.stop();
    }
  });

  it('refuses path tricks in job data that bypassed the API, writing nothing outside MODELS_DIR', async () => {
    worker = await startWorker(env());
    const outside = join(dirname(worker.modelsDir), 'escaped.gguf');
    const tricks = [
      { source: { repo: 'acme/x', file: '../../escaped.gguf' } },
      { source: { repo: 'acme/x', file: 'ok.gguf' }, name: '../escaped.gguf' },
      { source: { repo: 'acme/x', file: 'ok.gguf' }, name: '/tmp/escaped.gguf' },
      { source: { repo: 'acme/x', file: 'ok.gguf' }, name: 'a\0.gguf' },
    ];
    for (const data of tricks) {
      const job = await worker.queue.add('pull', data, { jobId: `trick-${tricks.indexOf(data)}` });
      const { state, job: done } = await worker.finished(job.id!);
      assert.equal(state, 'failed');
      assert.match(done.failedReason, /^invalid pull: /);
    }
    assert.equal(existsSync(outside), false);
    assert.equal(existsSync('/tmp/escaped.gguf'), false);
  });

  it('finishes at once without downloading when the file is already on disk with the same sha256', async () => {
    const model = await serve('acme/again-GGUF', 'again.gguf', 2 * MB);
    worker = await startWorker(env());
    const source = { repo: 'acme/again-GGUF', file: 'again.gguf' };
    const first = await worker.finished((await worker.enqueue({ source })).id!);
    assert.equal(first.state, 'completed');
    await first.job.remove();
    const second = await worker.finished((await worker.enqueue({ source, sha256: model.sha256 })).id!);
    assert.equal(second.state, 'completed', second.job.failedReason);
    assert.equal(second.job.returnvalue.alreadyPresent, true);
    assert.equal(blobGets(model.sha256).length, 1);
  });

  it('pulls a plain URL on an allowed host', async () => {
    const model = await serve('acme/url-GGUF', 'url.gguf', 1 * MB);
    worker = await startWorker(env());
    const job = await worker.enqueue({
      source: { url: hub.blobUrl(model.sha256, 'from-url.gguf') },
      sha256: model.sha256,
    });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.name, 'from-url.gguf');
    assert.equal((await stat(join(worker.modelsDir, 'from-url.gguf'))).size, model.size);
  });

  it('pulls every part of a split GGUF', async () => {
    const parts = [
      await serve('acme/split-GGUF', 'q8/m-00001-of-00002.gguf', 1 * MB),
      await serve('acme/split-GGUF', 'q8/m-00002-of-00002.gguf', 1 * MB),
    ];
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { repo: 'acme/split-GGUF', file: 'q8/m-00001-of-00002.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.deepEqual(done.returnvalue.files, ['m-00001-of-00002.gguf', 'm-00002-of-00002.gguf']);
    assert.equal(done.returnvalue.bytes, parts[0]!.size + parts[1]!.size);
    assert.deepEqual((await readdir(worker.modelsDir)).sort(), [
      '.partial',
      'm-00001-of-00002.gguf',
      'm-00002-of-00002.gguf',
    ]);
  });

  it('asks the hub for a fresh URL when a signed CDN URL has expired, for every part of a split GGUF', async () => {
    const parts = [
      await serve('acme/expiry-GGUF', 'm-00001-of-00002.gguf', 1 * MB),
      await serve('acme/expiry-GGUF', 'm-00002-of-00002.gguf', 1 * MB),
    ];
    worker = await startWorker(env());
    let expired = false;
    hub.onRequest = (r) => {
      // Once the first part starts downloading, every URL handed out so far (both parts' from the plan) expires.
      if (!expired && r.server === 'cdn' && r.method === 'GET') {
        expired = true;
        hub.expireSignedUrls();
      }
    };
    const job = await worker.enqueue({ source: { repo: 'acme/expiry-GGUF', file: 'm-00001-of-00002.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.deepEqual(done.returnvalue.files, ['m-00001-of-00002.gguf', 'm-00002-of-00002.gguf']);
    assert.equal(blobGets(parts[0]!.sha256).length, 2, 'part 1: refused once, then fetched with a fresh URL');
    assert.equal(blobGets(parts[1]!.sha256).length, 1, 'part 2: resolved right before its download');
    assert.equal(done.attemptsMade, 1, 'completed within its first attempt');
  });

  it('fails without the HF_TOKEN hint when the CDN refuses even a fresh URL', async () => {
    const model = await serve('acme/refused-GGUF', 'refused.gguf', 1 * MB);
    worker = await startWorker(env());
    hub.onRequest = (r) => {
      if (r.server === 'cdn') hub.expireSignedUrls();
    };
    const job = await worker.enqueue({ source: { repo: 'acme/refused-GGUF', file: 'refused.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'failed');
    assert.match(done.failedReason, /refused access \(403\), even with a fresh URL$/);
    assert.doesNotMatch(done.failedReason, /HF_TOKEN/);
    assert.equal(blobGets(model.sha256).length, 2);
    assert.equal(done.attemptsMade, 1, 'not retried');
  });

  it('fails at once, removing the partial, when the server sends more bytes than the size it announced', async () => {
    const bigger = await serve('acme/bigger-GGUF', 'bigger.gguf', 2 * MB);
    const path = join(sources, 'announced.gguf');
    await writeTestGguf(path, 1 * MB, seed++);
    const announced = await hub.addFile('acme/surplus-GGUF', 'surplus.gguf', {
      path,
      redirectTo: hub.blobUrl(bigger.sha256, 'surplus.gguf'),
    });
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { repo: 'acme/surplus-GGUF', file: 'surplus.gguf' } });
    const { state, job: done } = await worker.finished(job.id!, 20_000);
    assert.equal(state, 'failed');
    assert.equal(
      done.failedReason,
      `surplus.gguf: the server sent ${bigger.size} bytes, more than the ${announced.size} it announced; the partial file was removed`,
    );
    assert.equal(done.attemptsMade, 1);
    assert.equal(existsSync(join(worker.modelsDir, '.partial', 'surplus.gguf')), false);
  });

  it('fails, removing the partial, when the file changed on the hub between a drop and the resume', async () => {
    const first = await serve('acme/changing-GGUF', 'changing.gguf', 4 * MB, { dropAtByte: 1 * MB });
    const second = await serve('acme/changed-GGUF', 'changed.gguf', 3 * MB);
    worker = await startWorker(env());
    let changed: Promise<unknown> | null = null;
    hub.onRequest = (r) => {
      if (!changed && r.server === 'cdn' && r.method === 'GET') {
        changed = hub.addFile('acme/changing-GGUF', 'changing.gguf', { path: second.path });
      }
    };
    const job = await worker.enqueue({ source: { repo: 'acme/changing-GGUF', file: 'changing.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    await changed;
    assert.equal(state, 'failed');
    assert.match(
      done.failedReason,
      new RegExp(
        `changing.gguf changed on the server during the pull \\(size ${first.size} -> ${second.size}, sha256 ${first.sha256} -> ${second.sha256}\\)`,
      ),
    );
    assert.equal(done.attemptsMade, 1);
    assert.equal(existsSync(join(worker.modelsDir, '.partial', 'changing.gguf')), false);
  });

  it('stops a cancelled pull and removes its partial file', async () => {
    await serve('acme/cancel-GGUF', 'cancel.gguf', 8 * MB);
    hub.throttle(2 * MB);
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { repo: 'acme/cancel-GGUF', file: 'cancel.gguf' } });
    const partial = join(worker.modelsDir, '.partial', 'cancel.gguf');
    await waitFor('bytes on disk', async () => existsSync(partial) && (await stat(partial)).size > 0);
    const redis = new Redis(testSettings.TEST_REDIS_URL);
    await redis.set(pullCancelKey(worker.prefix, job.id!), '1');
    redis.disconnect();
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'failed');
    assert.equal(done.failedReason, 'cancelled');
    assert.equal(existsSync(partial), false);
    const history = await worker.pool.query('SELECT state FROM pull_jobs WHERE job_id = $1', [job.id]);
    assert.equal(history.rows[0].state, 'cancelled');
  });
});
