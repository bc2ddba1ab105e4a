// `npm run bench -- gateway`: the same chat request sent straight to the upstream, through a bare
// express + http-proxy-middleware proxy, and through the full gateway (auth + rate limit + usage
// metering on real Redis), at 1 and 32 connections; then 500 concurrent streams, direct vs gateway.
//
// The upstream is a fast local fake OpenAI server (services/gateway/test/support/fake-openai.ts),
// so the figures measure the proxies, not a model. Auth is the real auth service (services/auth) with
// an rpm limit on the key, on real Redis. Every part runs as its own process on this machine.
import http from 'node:http';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import {
  deleteRedisPrefix,
  freePort,
  repoRoot,
  startProcess,
  stopProcess,
  testRedisPrefix,
  testSettings,
  TEST_AUTH_INTERNAL_TOKEN,
  waitFor,
  type ManagedProcess,
} from '@gguf-gateway/testkit';
import type { BenchRow, BenchSuite } from './bench.js';

const KEY = 'sk-bench-0123456789';
const CHAT_BODY = JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 });
const AUTOCANNON_SECONDS = 5;
const PROBE_REQUESTS = 2000;
const STREAMS = 500;
const STREAM_CHUNKS = 60;
const STREAM_INTERVAL_MS = 50;
// Streams start spread over this window (as users arrive), and all 500 then run at once.
const STREAM_RAMP_MS = 1000;
const STREAM_ROUNDS = 3;

interface Target {
  name: string;
  url: string;
  pid?: number;
}

function tsx(script: string, args: string[]): ManagedProcess {
  return startProcess(process.execPath, ['--import', 'tsx', join(repoRoot, script), ...args], { cwd: repoRoot });
}

async function listening(name: string, port: number, proc: ManagedProcess): Promise<void> {
  await waitFor(
    `${name} on port ${port}`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`${name} exited:\n${proc.output()}`);
      await fetch(`http://127.0.0.1:${port}/`).then((r) => r.body?.cancel());
      return true;
    },
    30_000,
  );
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** One keep-alive connection, one request at a time: latency at microsecond precision. */
async function probeLatency(target: Target): Promise<{ p50: number; p99: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const req = http.request(`${target.url}/v1/chat/completions`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      });
      req.on('response', (res) => {
        if (res.statusCode !== 200) reject(new Error(`${target.name} answered ${res.statusCode}`));
        res.resume();
        res.on('end', () => resolve(performance.now() - started));
      });
      req.on('error', reject);
      req.end(CHAT_BODY);
    });
  for (let i = 0; i < 200; i += 1) await once();
  const samples: number[] = [];
  for (let i = 0; i < PROBE_REQUESTS; i += 1) samples.push(await once());
  agent.destroy();
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) };
}

async function cannon(target: Target, connections: number): Promise<autocannon.Result> {
  const result = await autocannon({
    url: `${target.url}/v1/chat/completions`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: CHAT_BODY,
    connections,
    duration: AUTOCANNON_SECONDS,
  });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${target.name}: ${result.non2xx} non-2xx answers and ${result.errors} errors`);
  }
  return result;
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

interface StreamFigures {
  ttfbP50: number;
  gapP99: number;
  rssMb: number | null;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** STREAMS concurrent streams; time to first byte and the gaps between chunks as the client sees them. */
async function streams(target: Target, chunks = STREAM_CHUNKS): Promise<StreamFigures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: STREAMS });
  const ttfbs: number[] = [];
  const gaps: number[] = [];
  let peakRss = 0;
  const sampler = target.pid ? setInterval(() => (peakRss = Math.max(peakRss, rssMb(target.pid!))), 100) : null;
  const one = (i: number) =>
    new Promise<void>((resolve) => setTimeout(resolve, (i * STREAM_RAMP_MS) / STREAMS)).then(() => stream());
  const stream = () =>
    new Promise<void>((resolve, reject) => {
      const started = performance.now();
      let last = 0;
      const req = http.request(`${target.url}/v1/chat/completions`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      });
      req.on('response', (res) => {
        if (res.statusCode !== 200) reject(new Error(`${target.name} answered ${res.statusCode}`));
        res.on('data', () => {
          const now = performance.now();
          if (last === 0) ttfbs.push(now - started);
          else gaps.push(now - last);
          last = now;
        });
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ ...JSON.parse(CHAT_BODY), stream: true, max_tokens: chunks }));
    });
  await Promise.all(Array.from({ length: STREAMS }, (_, i) => one(i)));
  if (sampler) clearInterval(sampler);
  agent.destroy();
  ttfbs.sort((a, b) => a - b);
  gaps.sort((a, b) => a - b);
  return { ttfbP50: percentile(ttfbs, 0.5), gapP99: percentile(gaps, 0.99), rssMb: target.pid ? peakRss : null };
}

export const gatewayBench: BenchSuite = {
  name: 'gateway',
  async run(): Promise<BenchRow[]> {
    const prefix = testRedisPrefix();
    const dir = mkdtempSync(join(tmpdir(), 'gg-gateway-bench-'));
    const procs: ManagedProcess[] = [];
    try {
      const [upstreamPort, authPort, barePort, gatewayPort, healthPort, stubPort, stubGatewayPort, stubHealthPort] =
        await Promise.all(Array.from({ length: 8 }, () => freePort()));
      const upstream = tsx('services/gateway/test/support/fake-openai.main.ts', [
        String(upstreamPort),
        '3',
        String(STREAM_INTERVAL_MS),
      ]);
      const keysFile = join(dir, 'api_keys');
      writeFileSync(keysFile, `bench:${KEY} rpm=1000000000\n`, { mode: 0o600 });
      const auth = startProcess(process.execPath, [join(repoRoot, 'services/auth/dist/main.js')], {
        env: {
          ...process.env,
          PORT: String(authPort),
          REDIS_URL: testSettings.TEST_REDIS_URL,
          REDIS_KEY_PREFIX: prefix,
          API_KEYS_FILE: keysFile,
          AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
          LOG_LEVEL: 'warn',
        },
      });
      const bare = tsx('scripts/bench/bare-proxy.ts', [String(barePort), `http://127.0.0.1:${upstreamPort}`]);
      const backendsFile = join(dir, 'backends.yaml');
      writeFileSync(
        backendsFile,
        `models: { bench: { tiers: [[fake]] } }\nbackends: { fake: { kind: llamacpp, url: "http://127.0.0.1:${upstreamPort}" } }\n`,
      );
      const startGateway = (port: number, healthPort: number, authUrl: string) =>
        startProcess(process.execPath, [join(repoRoot, 'services/gateway/dist/main.js')], {
          env: {
            ...process.env,
            PORT: String(port),
            PORT_HEALTH: String(healthPort),
            REDIS_URL: testSettings.TEST_REDIS_URL,
            REDIS_KEY_PREFIX: prefix,
            AUTH_URL: authUrl,
            AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
            BACKENDS_FILE: backendsFile,
            LOG_LEVEL: 'warn',
          },
        });
      const gateway = startGateway(gatewayPort!, healthPort!, `http://127.0.0.1:${authPort}`);
      // The same gateway in front of an in-memory auth stub: the gateway's own cost, auth's taken out.
      const stub = tsx('services/gateway/test/support/auth-stub.main.ts', [String(stubPort), KEY]);
      const stubGateway = startGateway(stubGatewayPort!, stubHealthPort!, `http://127.0.0.1:${stubPort}`);
      procs.push(upstream, auth, bare, gateway, stub, stubGateway);
      await listening('fake upstream', upstreamPort!, upstream);
      await listening('auth', authPort!, auth);
      await listening('bare proxy', barePort!, bare);
      await listening('gateway', gatewayPort!, gateway);
      await listening('auth stub', stubPort!, stub);
      await listening('gateway with auth stub', stubGatewayPort!, stubGateway);

      const targets: Target[] = [
        { name: 'direct upstream', url: `http://127.0.0.1:${upstreamPort}` },
        { name: 'bare express + http-proxy-middleware', url: `http://127.0.0.1:${barePort}`, pid: bare.child.pid },
        {
          name: 'full gateway (auth + rpm + metering)',
          url: `http://127.0.0.1:${gatewayPort}`,
          pid: gateway.child.pid,
        },
        {
          name: 'gateway + in-memory auth stub (metering on)',
          url: `http://127.0.0.1:${stubGatewayPort}`,
          pid: stubGateway.child.pid,
        },
      ];
      const rows: BenchRow[] = [];
      const directP50: Record<number, number> = {};
      for (const connections of [1, 32]) {
        for (const target of targets) {
          const result = await cannon(target, connections);
          // autocannon reports whole milliseconds: at one connection the latency comes from a
          // sequential probe at microsecond precision instead.
          const latency =
            connections === 1 ? await probeLatency(target) : { p50: result.latency.p50, p99: result.latency.p99 };
          directP50[connections] ??= latency.p50;
          rows.push({
            case: target.name,
            connections,
            'req/s': Math.round(result.requests.average),
            'p50 ms': latency.p50,
            'p99 ms': latency.p99,
            'added p50 ms': latency.p50 - directP50[connections]!,
          });
        }
      }
      // A short round first, so every path runs with warm connection pools. Then the paths take
      // turns, STREAM_ROUNDS times, and each figure is the median of its rounds: this machine is
      // shared, and one round's p99 moves with whatever else runs at that moment.
      const streamed = [targets[0]!, targets[2]!, targets[3]!];
      for (const target of streamed) await streams(target, 2);
      const rounds = streamed.map(() => [] as StreamFigures[]);
      for (let round = 0; round < STREAM_ROUNDS; round += 1) {
        for (const [i, target] of streamed.entries()) rounds[i]!.push(await streams(target));
      }
      const direct = rounds[0]!;
      for (const [i, target] of streamed.entries()) {
        if (i === 0) continue;
        rows.push({
          case: `${STREAMS} streams x ${STREAM_CHUNKS} chunks every ${STREAM_INTERVAL_MS} ms: ${target.name}`,
          connections: STREAMS,
          'added TTFB p50 ms': median(rounds[i]!.map((r, k) => r.ttfbP50 - direct[k]!.ttfbP50)),
          'added p99 inter-chunk ms': median(rounds[i]!.map((r, k) => r.gapP99 - direct[k]!.gapP99)),
          'gateway RSS MB': Math.round(Math.max(...rounds[i]!.map((r) => r.rssMb ?? 0))),
        });
      }
      return rows;
    } finally {
      for (const proc of procs.reverse()) await stopProcess(proc);
      await deleteRedisPrefix(prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
