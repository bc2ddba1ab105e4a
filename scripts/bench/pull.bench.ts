// Model pull throughput against a plain download (curl) of the same file from the same local
// server, and a resume after the worker is SIGKILLed mid-download. The worker runs as its own
// process, as deployed. Unlimited loopback measures the worker's own CPU cost (hashing, writing,
// verifying, recording); the CDN limited to a fast real link shows what a user sees.
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
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
const LINK_BYTES_PER_SEC = 100 * MB;
const LINK_RUNS = 3;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mbps = (bytes: number, ms: number) => bytes / MB / (ms / 1000);

/** The baseline a user would compare with: curl writing the same file from the same server. */
async function curlDownload(url: string, to: string): Promise<number> {
  const started = performance.now();
  const curl = startProcess('curl', ['-sS', '-o', to, url]);
  if ((await curl.exited) !== 0) throw new Error(`curl failed: ${curl.output()}`);
  return performance.now() - started;
}

/** The same in Node (http.get piped to a file), the floor under any pull written in Node. */
async function nodeDownload(url: string, to: string): Promise<number> {
  const started = performance.now();
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).on('error', reject));
  await pipeline(res, createWriteStream(to));
  return performance.now() - started;
}

async function finished(queue: PullQueue, jobId: string): Promise<void> {
  const view = await waitFor(
    `pull ${jobId}`,
    async () => {
      const job = await queue.find(jobId);
      const view = job ? await queue.view(job) : null;
      return view && FINISHED_PULL_STATES.includes(view.state) ? view : null;
    },
    120_000,
    10,
  );
  if (view.state !== 'completed') throw new Error(`pull ${jobId}: ${view.error ?? view.state}`);
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
          PULL_LOCK_MS: '1000',
        },
      });
    const workers: ManagedProcess[] = [];
    try {
      const path = join(dir, 'source.gguf');
      await writeTestGguf(path, FILE_BYTES, 99);
      const { sha256, size } = await hub.addFile('bench/pull-GGUF', 'bench.gguf', { path });
      const source = { repo: 'bench/pull-GGUF', file: 'bench.gguf' };
      const jobId = pullJobId(source);
      const pullOnce = async () => {
        await rm(join(models, 'bench.gguf'), { force: true });
        await queue.enqueue({ source });
      };

      workers.push(startWorker());
      const plain: number[] = [];
      const node: number[] = [];
      const pulled: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        plain.push(await curlDownload(hub.blobUrl(sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        node.push(await nodeDownload(hub.blobUrl(sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        const started = performance.now();
        await pullOnce();
        await finished(queue, jobId);
        pulled.push(performance.now() - started);
      }
      // The same at the speed of a fast real link, where the network and not the CPU sets the pace.
      hub.throttle(LINK_BYTES_PER_SEC);
      const linkPlain: number[] = [];
      const linkPulled: number[] = [];
      for (let run = 0; run < LINK_RUNS; run++) {
        linkPlain.push(await curlDownload(hub.blobUrl(sha256), join(dir, 'plain.bin')));
        await rm(join(dir, 'plain.bin'));
        const started = performance.now();
        await pullOnce();
        await finished(queue, jobId);
        linkPulled.push(performance.now() - started);
      }
      hub.throttle(null);
      await killProcess(workers[0]!);
      const linkPlainRate = mbps(size, median(linkPlain));
      const linkPullRate = mbps(size, median(linkPulled));
      const plainRate = mbps(size, median(plain));
      const nodeRate = mbps(size, median(node));
      const pullRate = mbps(size, median(pulled));

      // Resume: a worker killed half way; a new one takes the job over and continues the partial file.
      hub.throttle(64 * MB);
      await pullOnce();
      workers.push(startWorker());
      const partial = join(models, '.partial', 'bench.gguf');
      await waitFor(
        'half the file on disk',
        async () => ((await stat(partial).catch(() => null))?.size ?? 0) > size / 2,
      );
      await killProcess(workers[1]!);
      const onDisk = (await stat(partial)).size;
      hub.throttle(null);
      const requestsBefore = hub.cdnRequests().length;
      const restarted = performance.now();
      workers.push(startWorker());
      await finished(queue, jobId);
      const resumeMs = performance.now() - restarted;
      const resumed = hub
        .cdnRequests()
        .slice(requestsBefore)
        .find((r) => r.method === 'GET');

      return [
        {
          case: 'plain download (curl -o)',
          'MB/s': plainRate,
          'vs plain': '100%',
          notes: `${Math.round(size / MB)} MiB GGUF, median of ${RUNS}`,
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
          notes: `queue add to job completed, median of ${RUNS}; ${((pullRate / nodeRate) * 100).toFixed(0)}% of the Node download`,
        },
        {
          case: `curl -o, CDN limited to ${LINK_BYTES_PER_SEC / MB} MB/s`,
          'MB/s': linkPlainRate,
          'vs plain': '100%',
          notes: `median of ${LINK_RUNS}`,
        },
        {
          case: `pull, CDN limited to ${LINK_BYTES_PER_SEC / MB} MB/s`,
          'MB/s': linkPullRate,
          'vs plain': `${((linkPullRate / linkPlainRate) * 100).toFixed(0)}%`,
          notes: `median of ${LINK_RUNS}, against the curl row above`,
        },
        {
          case: 'resume after SIGKILL at ~50%',
          'MB/s': mbps(size - onDisk, resumeMs),
          'vs plain': '',
          notes: `new worker sent ${resumed?.headers.range ?? 'no Range'} (${Math.round(onDisk / MB)} MiB kept); done ${(resumeMs / 1000).toFixed(1)} s after its start (process start, 1 s lock handover, rehash of the kept part included)`,
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
