import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pullCancelKey } from '@gguf-gateway/shared';
import {
  createTestDatabase,
  FakeHub,
  testSettings,
  waitFor,
  writeTestGguf,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { startWorker, type RunningWorker } from './pull-harness.js';

const MB = 1024 * 1024;

// What a hostile or careless download host, a hung hub, or a presigned URL can do to a pull.
describe('model pull hardening', function () {
  this.timeout(60_000);
  let hub: FakeHub;
  let db: TestDatabase;
  let sources: string;
  let worker: RunningWorker | undefined;
  let seed = 500;

  async function serve(repo: string, file: string, bytes: number, spec: Parameters<FakeHub['addFile']>[2] = {}) {
    const path = join(sources, `${seed}.gguf`);
    await writeTestGguf(path, bytes, seed++);
    return { path, ...(await hub.addFile(repo, file, { path, ...spec })) };
  }

  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: db.url,
    HF_ENDPOINT: hub.url,
    PULL_ALLOWED_HOSTS: hub.cdnHost,
    ...extra,
  });

  const cdnGets = (sha256: string) => hub.cdnRequests().filter((r) => r.method === 'GET' && r.url.includes(sha256));

  before(async () => {
    hub = await FakeHub.start();
    db = await createTestDatabase({ migrate: true });
    sources = await mkdtemp(join(tmpdir(), 'gg-hub-'));
  });

  afterEach(async () => {
    hub.hang(false);
    hub.onRequest = null;
    await worker?.close();
    worker = undefined;
  });

  after(async () => {
    await hub.stop();
    await db.drop();
    await rm(sources, { recursive: true, force: true });
  });

  it('starts over, instead of splicing two files, when the file behind a URL changed between a drop and the resume', async () => {
    const first = await serve('acme/src-GGUF', 'first.gguf', 4 * MB, { dropAtByte: 1 * MB });
    const other = join(sources, 'other.gguf');
    await writeTestGguf(other, 4 * MB, seed++);
    let replaced: Promise<{ sha256: string; size: number }> | null = null;
    hub.onRequest = (r) => {
      // Re-uploaded in place while the first download runs: same URL, same size, other bytes.
      if (!replaced && r.server === 'cdn' && r.method === 'GET')
        replaced = hub.replaceBlob(first.sha256, { path: other });
    };
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { url: hub.blobUrl(first.sha256, 'replaced.gguf') } });
    const { state, job: done } = await worker.finished(job.id!);
    const now = await replaced!;
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(now.size, first.size);
    assert.equal(done.returnvalue.sha256, now.sha256, 'the new file, whole');
    const gets = cdnGets(first.sha256);
    assert.equal(gets.length, 3);
    assert.match(gets[1]!.headers.range ?? '', /^bytes=\d+-$/);
    assert.equal(gets[1]!.headers['if-range'], `"${first.sha256}"`, 'the resume names the file it continues');
    assert.equal(gets[2]!.headers.range, undefined, 'then the new file from byte 0');
    assert.equal(done.attemptsMade, 1);
  });

  it('asks a host that refuses HEAD, as a presigned URL does, with a GET of one byte', async () => {
    const model = await serve('acme/presigned-GGUF', 'presigned.gguf', 1 * MB, { refuseHead: true });
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { url: hub.blobUrl(model.sha256, 'presigned.gguf') } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.equal(done.returnvalue.sha256, model.sha256);
    const asked = hub.cdnRequests().filter((r) => r.url.includes(model.sha256));
    assert.equal(asked[0]!.method, 'HEAD');
    assert.equal(asked[1]!.method, 'GET');
    assert.equal(asked[1]!.headers.range, 'bytes=0-0');
  });

  it('refuses plain http: downloads unless PULL_ALLOW_HTTP is set, without contacting the host', async () => {
    const model = await serve('acme/http-GGUF', 'http.gguf', 64 * 1024);
    worker = await startWorker(env({ PULL_ALLOW_HTTP: 'false' }));
    const before = hub.cdnRequests().length;
    const byUrl = await worker.enqueue({ source: { url: hub.blobUrl(model.sha256, 'http.gguf') } });
    const byHub = await worker.enqueue({ source: { repo: 'acme/http-GGUF', file: 'http.gguf' } });
    for (const job of [byUrl, byHub]) {
      const { state, job: done } = await worker.finished(job.id!);
      assert.equal(state, 'failed');
      assert.equal(
        done.failedReason,
        `refusing to download over plain HTTP from ${hub.cdnHost} (anyone on the path could change the model): use https, or set PULL_ALLOW_HTTP=true`,
      );
      assert.equal(done.attemptsMade, 1, 'not retried');
    }
    assert.equal(hub.cdnRequests().length, before, 'the http host was never contacted');
  });

  it('keeps the signature of a presigned URL out of the logs and the stored sources', async () => {
    const model = await serve('acme/signed-GGUF', 'signed.gguf', 1 * MB, { dropAtByte: 512 * 1024 });
    worker = await startWorker(env());
    const url = `${hub.blobUrl(model.sha256, 'signed.gguf')}?X-Amz-Credential=AKIA-cred-secret&X-Amz-Signature=sig-secret-0123`;
    const job = await worker.enqueue({ source: { url } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'completed', done.failedReason);
    assert.ok(
      cdnGets(model.sha256).every((r) => r.url.includes('X-Amz-Signature=sig-secret-0123')),
      'sent as given',
    );
    const history = await worker.pool.query('SELECT source::text FROM pull_jobs WHERE job_id = $1', [job.id]);
    const stored = await worker.pool.query('SELECT source::text FROM models WHERE name = $1', ['signed.gguf']);
    for (const text of [history.rows[0].source, stored.rows[0].source] as string[]) {
      assert.doesNotMatch(text, /secret/);
      assert.match(text, /X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED/);
    }
    assert.match(worker.logs.text(), /pull started/);
    assert.match(worker.logs.text(), /download interrupted, resuming/);
    assert.doesNotMatch(worker.logs.text(), /secret/);
  });

  it('gives up on a hub that does not answer after PULL_RESOLVE_TIMEOUT_MS, and retries like a network fault', async () => {
    hub.hang(true);
    worker = await startWorker(env({ PULL_RESOLVE_TIMEOUT_MS: '300' }));
    const job = await worker.enqueue({ source: { repo: 'acme/hung-GGUF', file: 'hung.gguf' } });
    const { state, job: done } = await worker.finished(job.id!);
    assert.equal(state, 'failed');
    assert.equal(
      done.failedReason,
      `${hub.url.replace('http://', '')}/acme/hung-GGUF/resolve/main/hung.gguf did not answer within 300 ms (PULL_RESOLVE_TIMEOUT_MS)`,
    );
    assert.equal(done.attemptsMade, 5, 'every attempt tried');
    const history = await worker.pool.query('SELECT state FROM pull_jobs WHERE job_id = $1', [job.id]);
    assert.equal(history.rows[0].state, 'failed');
  });

  it('stops a pull cancelled while the hub is still being asked where the file is', async () => {
    hub.hang(true);
    worker = await startWorker(env());
    const job = await worker.enqueue({ source: { repo: 'acme/hung-GGUF', file: 'cancel-hung.gguf' } });
    await waitFor('the hub to be asked', async () => hub.requests.some((r) => r.url.includes('cancel-hung')) || null);
    const redis = new Redis(testSettings.TEST_REDIS_URL);
    const cancelledAt = Date.now();
    await redis.set(pullCancelKey(worker.prefix, job.id!), '1');
    redis.disconnect();
    const { state, job: done } = await worker.finished(job.id!, 10_000);
    assert.ok(Date.now() - cancelledAt < 3_000, `stopped ${Date.now() - cancelledAt} ms after the cancel`);
    assert.equal(state, 'failed');
    assert.equal(done.failedReason, 'cancelled');
    const history = await worker.pool.query('SELECT state FROM pull_jobs WHERE job_id = $1', [job.id]);
    assert.equal(history.rows[0].state, 'cancelled');
  });
});
