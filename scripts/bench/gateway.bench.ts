// `npm run bench -- gateway`: the same chat request sent straight to the upstream, through a bare
// express + http-proxy-middleware proxy, and through the full gateway (auth + rate limit + usage
// metering on real Redis; with auth's grants and without), under wrk and autocannon at 1 and 32
// connections; then 2,000 concurrent streams straight, through the bare proxy and through the gateway.
//
// The upstream is a fast local fake OpenAI server (services/gateway/test/support/fake-openai.ts),
// so the figures measure the proxies, not a model. Auth is the real auth service (services/auth) with
// an rpm limit on the key, on real Redis. Every part runs as its own process on this machine.
import http from 'node:http';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import {
  cpuMicros,
  loadAverage,
  measureLoad,
  requireWrk,
  type LoadRequest,
  type LoadResult,
  type LoadTarget,
  type LoadTool,
} from './http-load.js';

const KEY = 'sk-bench-0123456789';
const CHAT: LoadRequest = {
  path: '/v1/chat/completions',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
  body: JSON.stringify({ model: 'bench', messages: [{ role: 'user', content: 'hello' }], max_tokens: 3 }),
};
const LOAD_SECONDS = 3;
// The targets take turns this many times per tool and connection count; each figure is the median.
const LOAD_ROUNDS = 2;
const PROBE_REQUESTS = 1000;
const WARM_UP_SECONDS = 2;
const STREAMS = 2000;
const STREAM_CHUNKS = 60;
const STREAM_INTERVAL_MS = 50;
// Streams start spread over this window (as users arrive), and all of them then run at once.
const STREAM_RAMP_MS = 2000;
const STREAM_ROUNDS = 3;
/** auth's default: how long the gateway may reuse a decision. */
const GRANT_TTL_MS = 250;

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

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

interface StreamFigures {
  ttfbP50: number;
  gapP99: number;
  rssMb: number | null;
  /**
   * CPU time of the proxy per chunk the clients received (set-up included): what a stream costs it,
   * a figure that holds even on a saturated machine.
   */
  cpuUsPerChunk: number | null;
}

/** STREAMS concurrent streams; time to first byte and the gaps between chunks as the client sees them. */
async function streams(target: LoadTarget, chunks = STREAM_CHUNKS): Promise<StreamFigures> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: STREAMS });
  const ttfbs: number[] = [];
  const gaps: number[] = [];
  let peakRss = 0;
  const sampler = target.pid ? setInterval(() => (peakRss = Math.max(peakRss, rssMb(target.pid!))), 100) : null;
  const cpuBefore = cpuMicros(target.pid);
  const one = (i: number) =>
    new Promise<void>((resolve) => setTimeout(resolve, (i * STREAM_RAMP_MS) / STREAMS)).then(() => stream());
  const stream = () =>
    new Promise<void>((resolve, reject) => {
      const started = performance.now();
      let last = 0;
      const req = http.request(`${target.url}${CHAT.path}`, { method: 'POST', agent, headers: CHAT.headers });
      req.on('response', (res) => {
        if (res.statusCode !== 200) reject(new Error(`${target.name} answered ${res.statusCode}`));
        res.on('data', () => {
          const now = performance.now();
          if (last === 0) ttfbs.push(now - started);
          else gaps.push(now - last);
          last = now;
        });
        res.on('end', resolve);
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ ...JSON.parse(CHAT.body), stream: true, max_tokens: chunks }));
    });
  try {
    await Promise.all(Array.from({ length: STREAMS }, (_, i) => one(i)));
  } finally {
    if (sampler) clearInterval(sampler);
    agent.destroy();
  }
  const cpuAfter = cpuMicros(target.pid);
  const chunksSeen = ttfbs.length + gaps.length;
  ttfbs.sort((a, b) => a - b);
  gaps.sort((a, b) => a - b);
  return {
    ttfbP50: percentile(ttfbs, 0.5),
    gapP99: percentile(gaps, 0.99),
    rssMb: target.pid ? peakRss : null,
    cpuUsPerChunk: cpuBefore === null || cpuAfter === null ? null : (cpuAfter - cpuBefore) / chunksSeen,
  };
}

interface Figures {
  rounds: LoadResult[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
const round2 = (value: number) => Math.round(value * 100) / 100;

/**
 * Every target under each tool at 1 and 32 connections. The targets take turns (LOAD_ROUNDS times),
 * so each comparison is made side by side: what else runs on the machine weighs on all of them alike.
 */
async function loadRows(targets: LoadTarget[]): Promise<BenchRow[]> {
  const tools: LoadTool[] = ['wrk', 'autocannon'];
  const rows: BenchRow[] = [];
  // Warm every target first (JIT, connection pools, grants), so that no first round runs cold.
  for (const target of targets) await measureLoad('wrk', target, CHAT, 8, WARM_UP_SECONDS, 0);
  for (const connections of [1, 32]) {
    for (const tool of tools) {
      const figures = targets.map((): Figures => ({ rounds: [] }));
      for (let round = 0; round < LOAD_ROUNDS; round += 1) {
        for (const [i, target] of targets.entries()) {
          figures[i]!.rounds.push(await measureLoad(tool, target, CHAT, connections, LOAD_SECONDS, PROBE_REQUESTS));
        }
      }
      const [direct, bare] = figures;
      const rps = (f: Figures) => median(f.rounds.map((r) => r.rps));
      for (const [i, target] of targets.entries()) {
        const { rounds } = figures[i]!;
        const cpu = rounds.map((r) => r.cpuUsPerRequest).filter((c) => c !== null);
        rows.push({
          tool,
          case: target.name,
          connections,
          'req/s': Math.round(rps(figures[i]!)),
          'x bare': round2(rps(figures[i]!) / rps(bare!)),
          'p50 ms': round2(median(rounds.map((r) => r.p50Ms))),
          'p99 ms': round2(median(rounds.map((r) => r.p99Ms))),
          // Per round, against the direct run of the same round.
          'added p50 ms': round2(median(rounds.map((r, k) => r.p50Ms - direct!.rounds[k]!.p50Ms))),
          'CPU µs/req': cpu.length > 0 ? Math.round(median(cpu)) : '',
          load: round2(median(rounds.map((r) => r.load))),
          // Summed over the rounds: a refusal under load is shown, not hidden in the averages.
          'non-2xx': rounds.reduce((sum, r) => sum + r.failed, 0),
        });
      }
    }
  }
  return rows;
}

/** Grants on against off (#11): the gain in req/s of the full gateway, by tool and connections. */
function grantRows(rows: BenchRow[], withGrants: string, withoutGrants: string): BenchRow[] {
  return rows
    .filter((row) => row.case === withGrants)
    .map((row) => {
      const off = rows.find(
        (r) => r.case === withoutGrants && r.tool === row.tool && r.connections === row.connections,
      )!;
      return {
        tool: row.tool!,
        case: `grants: req/s with GRANT_TTL_MS=${GRANT_TTL_MS} over GRANT_TTL_MS=0`,
        connections: row.connections!,
        'x bare': round2(Number(row['req/s']) / Number(off['req/s'])),
      };
    });
}

/** STREAMS concurrent streams per target, the targets taking turns; added figures are against direct. */
async function streamRows(streamed: LoadTarget[]): Promise<BenchRow[]> {
  // A short round first, so every path runs with warm connection pools.
  for (const target of streamed) await streams(target, 2);
  const rounds = streamed.map(() => [] as StreamFigures[]);
  const loads: number[] = [];
  for (let round = 0; round < STREAM_ROUNDS; round += 1) {
    for (const [i, target] of streamed.entries()) rounds[i]!.push(await streams(target));
    loads.push(loadAverage());
  }
  const direct = rounds[0]!;
  return streamed.slice(1).map((target, j) => {
    const own = rounds[j + 1]!;
    return {
      tool: 'node http',
      case: `${STREAMS} streams x ${STREAM_CHUNKS} chunks every ${STREAM_INTERVAL_MS} ms: ${target.name}`,
      connections: STREAMS,
      'added TTFB p50 ms': round2(median(own.map((r, k) => r.ttfbP50 - direct[k]!.ttfbP50))),
      'added p99 inter-chunk ms': round2(median(own.map((r, k) => r.gapP99 - direct[k]!.gapP99))),
      'proxy RSS MB': Math.round(Math.max(...own.map((r) => r.rssMb ?? 0))),
      'proxy CPU µs/chunk': Math.round(median(own.map((r) => r.cpuUsPerChunk ?? 0))),
      load: round2(median(loads)),
    };
  });
}

export const gatewayBench: BenchSuite = {
  name: 'gateway',
  async run(): Promise<BenchRow[]> {
    requireWrk();
    const prefix = testRedisPrefix();
    const dir = mkdtempSync(join(tmpdir(), 'gg-gateway-bench-'));
    const procs: ManagedProcess[] = [];
    try {
      const ports = await Promise.all(Array.from({ length: 8 }, () => freePort()));
      const [upstreamPort, authPort, noGrantsAuthPort, barePort, ...gatewayPorts] = ports;
      const upstream = tsx('services/gateway/test/support/fake-openai.main.ts', [
        String(upstreamPort),
        '3',
        String(STREAM_INTERVAL_MS),
      ]);
      const keysFile = join(dir, 'api_keys');
      writeFileSync(keysFile, `bench:${KEY} rpm=1000000000\n`, { mode: 0o600 });
      const startAuth = (port: number, grantTtlMs: number) =>
        startProcess(process.execPath, [join(repoRoot, 'services/auth/dist/main.js')], {
          env: {
            ...process.env,
            PORT: String(port),
            REDIS_URL: testSettings.TEST_REDIS_URL,
            REDIS_KEY_PREFIX: prefix,
            API_KEYS_FILE: keysFile,
            AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
            GRANT_TTL_MS: String(grantTtlMs),
            LOG_LEVEL: 'warn',
          },
        });
      const auth = startAuth(authPort!, GRANT_TTL_MS);
      const noGrantsAuth = startAuth(noGrantsAuthPort!, 0);
      const bare = tsx('scripts/bench/bare-proxy.ts', [String(barePort), `http://127.0.0.1:${upstreamPort}`]);
      const backendsFile = join(dir, 'backends.yaml');
      writeFileSync(
        backendsFile,
        `models: { bench: { tiers: [[fake]] } }\nbackends: { fake: { kind: llamacpp, url: "http://127.0.0.1:${upstreamPort}" } }\n`,
      );
      const startGateway = (n: number, authUrl: string) =>
        startProcess(process.execPath, [join(repoRoot, 'services/gateway/dist/main.js')], {
          env: {
            ...process.env,
            PORT: String(gatewayPorts[2 * n]),
            PORT_HEALTH: String(gatewayPorts[2 * n + 1]),
            REDIS_URL: testSettings.TEST_REDIS_URL,
            REDIS_KEY_PREFIX: prefix,
            AUTH_URL: authUrl,
            AUTH_INTERNAL_TOKEN: TEST_AUTH_INTERNAL_TOKEN,
            BACKENDS_FILE: backendsFile,
            LOG_LEVEL: 'warn',
          },
        });
      const gateway = startGateway(0, `http://127.0.0.1:${authPort}`);
      const noGrantsGateway = startGateway(1, `http://127.0.0.1:${noGrantsAuthPort}`);
      procs.push(upstream, auth, noGrantsAuth, bare, gateway, noGrantsGateway);
      await listening('fake upstream', upstreamPort!, upstream);
      await listening('auth', authPort!, auth);
      await listening('auth without grants', noGrantsAuthPort!, noGrantsAuth);
      await listening('bare proxy', barePort!, bare);
      await listening('gateway', gatewayPorts[0]!, gateway);
      await listening('gateway without grants', gatewayPorts[2]!, noGrantsGateway);

      const at = (port: number | undefined) => `http://127.0.0.1:${port}`;
      const full = 'full gateway (auth + rpm + metering)';
      const noGrants = 'full gateway, grants off (GRANT_TTL_MS=0)';
      const targets: LoadTarget[] = [
        { name: 'direct upstream', url: at(upstreamPort) },
        { name: 'bare express + http-proxy-middleware', url: at(barePort), pid: bare.child.pid },
        { name: full, url: at(gatewayPorts[0]), pid: gateway.child.pid },
        { name: noGrants, url: at(gatewayPorts[2]), pid: noGrantsGateway.child.pid },
      ];
      const rows = await loadRows(targets);
      return [
        ...rows,
        ...grantRows(rows, full, noGrants),
        ...(await streamRows([targets[0]!, targets[1]!, targets[2]!])),
      ];
    } finally {
      for (const proc of procs.reverse()) await stopProcess(proc);
      await deleteRedisPrefix(prefix);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
