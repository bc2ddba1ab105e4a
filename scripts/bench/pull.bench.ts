// Model pull throughput against a plain download (curl) of the same file from the same local
// server, and a resume after the worker is SIGKILLed mid-download. The worker runs as its own
// process, as deployed. Unlimited loopback measures the worker's own CPU cost (hashing, writing,
// verifying, recording); the CDN limited per connection, as Hugging Face's is, shows what parallel
// ranges give a user over one connection.
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { get, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FINISHED_PULL_STATES, PullQueue, pullJobId } from '@gguf-gateway/shared';
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
} from '@gguf-gateway/testkit';
import type { BenchRow, BenchSuite } from './bench.js';

const MB = 1024 * 1024;
const FILE_BYTES = 256 * MB;
const RUNS = 5;
/** What one connection gets from the "CDN" (curl's baseline), as a CDN caps each connection. */
const LINK_BYTES_PER_SEC = 50 * MB;
const LINK_RUNS = 3;
const CONNECTIONS = 8;
const SMALL_FILE_BYTES = 128 * MB;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mbps = (bytes: number, ms: number) => bytes / MB / (ms / 1000);

/** The baseline a user would compare with: curl writing the same file from the same server. */
async function curlDownload(url: string, to: string): Promise<number> {
  const started = performance.now();
  const curl = startProcess('curl', ['-sS', '-o', to, url]);
  if ((await curl.exited) !== 0) throw new Error(`curl failed: ${curl.output()}`);
  return performance.now() - started;
}

/**
 * curl, then an fsync of what it wrote: the durable baseline, since a pull's file is on disk when the
 * job completes (fsync before the rename) and curl's is still in the page cache when it exits.
 */
async function curlDurable(url: string, to: string): Promise<number> {
  const started = performance.now();
  await curlDownload(url, to);
  const file = await open(to, 'r');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
  return performance.now() - started;
}

/** The same in Node (http.get piped to a file), the floor under any pull written in Node. */
async function nodeDownload(url: string, to: string): Promise<number> {
  const started = performance.now();
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).on('error', reject));
  await pipeline(res, createWriteStream(to));
  return performance.now() - started;
}

/** Writes back what the rows before left in the page cache, so that no row pays for another's writeback. */
function settle(): void {
  execFileSync('sync');
}

/**
 * Waits for the pull to complete; returns how long it took from its queueing to its completion, as
 * BullMQ recorded both. Timed by the job's own timestamps, the wait can poll rarely: this process
 * also plays the hub, and a busy poll here would slow what it serves.
 */
async function finished(queue: PullQueue, jobId: string): Promise<number> {
  const view = await waitFor(
    `pull ${jobId}`,
    async () => {
      const job = await queue.find(jobId);
      const view = job ? await queue.view(job) : null;
      return view && FINISHED_PULL_STATES.includes(view.state) ? view : null;
    },
    120_000,
    100,
  );
  if (view.state !== 'completed') throw new Error(`pull ${jobId}: ${view.error ?? view.state}`);
  return Date.parse(view.finishedAt!) - Date.parse(view.createdAt);
}

export const pullBench: BenchSuite = {
  name: 'pull',
  async run(): Promise<BenchRow[]> {
    const dir = await mkdtemp(join(tmpdir(), 'gg-bench-pull-'));
    const hub = await FakeHub.start();
    const db = await createTestDatabase({ migrate: true });
    const prefix = testRedisPrefix();
    const queue = PullQueue.connect(testSettings.TEST_REDIS_URL, prefix, () => undefined);
    const models = join(dir, 'models');
    const startWorker = () =>
      startProcess(process.execPath, [join(repoRoot, 'services/worker/dist/main.js')], {
        env: {
          PATH: process.env.PATH,
          PORT: '0',
          LOG_LEVEL: 'warn',
          REDIS_URL: testSettings.TEST_REDIS_URL,
          REDIS_KEY_PREFIX: prefix,
          DATABASE_URL: db.url,
          MODELS_DIR: models,
          HF_ENDPOINT: hub.url,
          PULL_ALLOWED_HOSTS: hub.cdnHost,
          PULL_ALLOW_HTTP: 'true',
          PULL_LOCK_MS: '1000',
          PULL_CONNECTIONS: String(CONNECTIONS),
        },
      });
    const workers: ManagedProcess[] = [];
    try {
      const path = join(dir, 'source.gguf');
      await writeTestGguf(path, FILE_BYTES, 99);
      const { sha256, size } = await hub.addFile('bench/pull-GGUF', 'bench.gguf', { path });
      const source = { repo: 'bench/pull-GGUF', file: 'bench.gguf' };
      const jobId = pullJobId(source);
      /** Queues a fresh pull of the big file, once its last copy is gone and written back. */
      const pullOnce = async () => {
        await rm(join(models, 'bench.gguf'), { force: true });
        settle();
        await queue.enqueue({ source });
      };

      workers.push(startWorker());
      const plain: number[] = [];
      const durable: number[] = [];
      const node: number[] = [];
      const pulled: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        settle();
        plain.push(await curlDownload(hub.blobUrl(sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        settle();
        durable.push(await curlDurable(hub.blobUrl(sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        settle();
        node.push(await nodeDownload(hub.blobUrl(sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        await pullOnce();
        pulled.push(await finished(queue, jobId));
      }
      // The CDN capped per connection: curl gets one connection's worth, the pull PULL_CONNECTIONS of them.
      hub.throttle(LINK_BYTES_PER_SEC);
      const linkPlain: number[] = [];
      const linkPulled: number[] = [];
      for (let run = 0; run < LINK_RUNS; run++) {
        settle();
        linkPlain.push(await curlDownload(hub.blobUrl(sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        await pullOnce();
        linkPulled.push(await finished(queue, jobId));
      }
      // The same at a tenth of that per connection, with a smaller file: where this machine's CPUs are
      // not what limits the pull, what parallel ranges alone give over one connection.
      const SLOW_BYTES_PER_SEC = LINK_BYTES_PER_SEC / 10;
      const smallPath = join(dir, 'small.gguf');
      await writeTestGguf(smallPath, SMALL_FILE_BYTES, 98);
      const small = await hub.addFile('bench/small-GGUF', 'small.gguf', { path: smallPath });
      const smallSource = { repo: 'bench/small-GGUF', file: 'small.gguf' };
      const smallJobId = pullJobId(smallSource);
      hub.throttle(SLOW_BYTES_PER_SEC);
      const slowPlain: number[] = [];
      const slowPulled: number[] = [];
      for (let run = 0; run < LINK_RUNS; run++) {
        slowPlain.push(await curlDownload(hub.blobUrl(small.sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        await rm(join(models, 'small.gguf'), { force: true });
        await queue.enqueue({ source: smallSource });
        slowPulled.push(await finished(queue, smallJobId));
      }
      hub.throttle(LINK_BYTES_PER_SEC);
      const slowPlainRate = mbps(small.size, median(slowPlain));
      const slowPullRate = mbps(small.size, median(slowPulled));
      await killProcess(workers[0]!);
      const linkPlainRate = mbps(size, median(linkPlain));
      const linkPullRate = mbps(size, median(linkPulled));
      const plainRate = mbps(size, median(plain));
      const durableRate = mbps(size, median(durable));
      const nodeRate = mbps(size, median(node));
      const pullRate = mbps(size, median(pulled));

      // Resume on the capped CDN: a worker killed half way; a new one takes the job over and fetches
      // what the saved range state says is missing. What the CDN sent in all, less the file's size,
      // is what was fetched twice (bytes received but not yet recorded as done when the kill came).
      await pullOnce();
      const sentBefore = hub.bytesSent;
      workers.push(startWorker());
      const state = join(models, '.partial', '.bench.gguf.ranges');
      const savedDone = async () => {
        const raw = await readFile(state, 'utf8').catch(() => null);
        if (raw === null) return 0;
        return (JSON.parse(raw) as { pieces: { done: number }[] }).pieces.reduce((sum, p) => sum + p.done, 0);
      };
      await waitFor('half the file saved as done', async () => ((await savedDone()) > size / 2 ? true : null));
      await killProcess(workers[1]!);
      const keptByState = await savedDone();
      const sentToFirst = hub.bytesSent - sentBefore;
      const requestsBefore = hub.cdnRequests().length;
      const restarted = performance.now();
      workers.push(startWorker());
      await finished(queue, jobId);
      const resumeMs = performance.now() - restarted;
      hub.throttle(null);
      const refetched = hub.bytesSent - sentBefore - size;
      const resumedGets = hub
        .cdnRequests()
        .slice(requestsBefore)
        .filter((r) => r.method === 'GET');
      const resumedRanges = resumedGets.length;
      const askedAgain = resumedGets.reduce((sum, r) => {
        const [from, to] = (/^bytes=(\d+)-(\d+)$/.exec(r.headers.range ?? '') ?? []).slice(1).map(Number);
        return sum + (to! - from! + 1);
      }, 0);

      return [
        {
          case: 'plain download (curl -o)',
          'MB/s': plainRate,
          'vs plain': '100%',
          notes: `${Math.round(size / MB)} MiB GGUF, median of ${RUNS}`,
        },
        {
          case: 'plain download, durable (curl -o, then fsync)',
          'MB/s': durableRate,
          'vs plain': `${((durableRate / plainRate) * 100).toFixed(0)}%`,
          notes: `median of ${RUNS}: what this disk lets any download finish at once it must be on disk`,
        },
        {
          case: 'plain download in Node (http.get piped to a file)',
          'MB/s': nodeRate,
          'vs plain': `${((nodeRate / plainRate) * 100).toFixed(0)}%`,
          notes: `median of ${RUNS}`,
        },
        {
          case: 'pull (resolve, download, sha256, GGUF check, fsync, rename, record)',
          'MB/s': pullRate,
          'vs plain': `${((pullRate / plainRate) * 100).toFixed(0)}%`,
          notes:
            `queue add to job completed, median of ${RUNS}; ${((pullRate / durableRate) * 100).toFixed(0)}% of the durable curl, ` +
            `${((pullRate / nodeRate) * 100).toFixed(0)}% of the Node download`,
        },
        {
          case: `curl -o, CDN limited to ${LINK_BYTES_PER_SEC / MB} MB/s per connection`,
          'MB/s': linkPlainRate,
          'vs plain': '100%',
          notes: `one connection, median of ${LINK_RUNS}`,
        },
        {
          case: `pull, CDN limited to ${LINK_BYTES_PER_SEC / MB} MB/s per connection`,
          'MB/s': linkPullRate,
          'vs plain': `${((linkPullRate / linkPlainRate) * 100).toFixed(0)}%`,
          notes: `PULL_CONNECTIONS=${CONNECTIONS}, median of ${LINK_RUNS}: ${(linkPullRate / linkPlainRate).toFixed(1)}x the curl row above`,
        },
        {
          case: `curl -o, CDN limited to ${LINK_BYTES_PER_SEC / 10 / MB} MB/s per connection`,
          'MB/s': slowPlainRate,
          'vs plain': '100%',
          notes: `${Math.round(small.size / MB)} MiB GGUF, one connection, median of ${LINK_RUNS}`,
        },
        {
          case: `pull, CDN limited to ${LINK_BYTES_PER_SEC / 10 / MB} MB/s per connection`,
          'MB/s': slowPullRate,
          'vs plain': `${((slowPullRate / slowPlainRate) * 100).toFixed(0)}%`,
          notes: `PULL_CONNECTIONS=${CONNECTIONS}, median of ${LINK_RUNS}: ${(slowPullRate / slowPlainRate).toFixed(1)}x the curl row above`,
        },
        {
          case: `resume after SIGKILL at ~50%, CDN limited to ${LINK_BYTES_PER_SEC / MB} MB/s per connection`,
          'MB/s': mbps(size - keptByState, resumeMs),
          'vs plain': '',
          notes:
            `${Math.round(keptByState / MB)} MiB kept by the saved ranges; the new worker asked for ${resumedRanges} ranges, ` +
            `${(askedAgain / MB).toFixed(1)} MiB (the file less what was kept: ${((size - keptByState) / MB).toFixed(1)} MiB). ` +
            `The CDN sent ${(refetched / MB).toFixed(1)} MiB more than the file in all (${Math.round(sentToFirst / MB)} MiB to the killed worker, ` +
            `most of the surplus still in socket buffers, never read); done ${(resumeMs / 1000).toFixed(1)} s after the new worker's start (process start and 1 s lock handover included)`,
        },
      ];
    } finally {
      for (const worker of workers) await stopProcess(worker);
      await queue.close();
      await deleteRedisPrefix(prefix);
      await hub.stop();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  },
};
