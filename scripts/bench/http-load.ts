// The two load generators the gateway rows are measured with, behind one shape: wrk (C, the tool
// other projects publish figures with) and autocannon (Node). Besides requests/s and latency, each run
// reports the CPU time the target process spent per request, read from /proc: a figure that moves far
// less than requests/s when other work shares the machine.
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startProcess } from '@gguf-gateway/testkit';

export interface LoadTarget {
  name: string;
  url: string;
  /** The process answering, for its CPU time; none for a target measured without. */
  pid?: number;
}

/** One POST, the same for every target and tool. */
export interface LoadRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface LoadResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time (user + system) of the target's process per answered request, in µs. */
  cpuUsPerRequest: number | null;
  /** The machine's one-minute load average when the run ended. */
  load: number;
  /** Answers other than 2xx, and connection errors: counted, so that one refusal under load does not end the bench. */
  failed: number;
}

export type LoadTool = 'wrk' | 'autocannon';

// Linux reports a process's CPU time in clock ticks of 1/100 s (USER_HZ) on every architecture Node runs on.
const TICKS_PER_SEC = 100;

/** CPU time (user + system) the process has used so far, in µs; null without a process. */
export function cpuMicros(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  // Fields 14 and 15 of /proc/<pid>/stat (utime, stime), counted after the command name in parentheses.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS_PER_SEC;
}

export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** Fails with what to install when wrk is missing. */
export function requireWrk(): void {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (err) {
    // wrk --version exits 1 after printing its version; only a missing binary is a problem.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('wrk is not installed: `apt-get install wrk` (or run scripts/install-test-tools)', {
        cause: err,
      });
    }
  }
}

// wrk's own summary, as one JSON line: latency in µs at microsecond precision.
const WRK_REPORT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"non2xx":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
`;

async function wrk(
  target: LoadTarget,
  request: LoadRequest,
  connections: number,
  seconds: number,
): Promise<{ rps: number; p50Ms: number; p99Ms: number; requests: number; failed: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'gg-wrk-'));
  try {
    const script = join(dir, 'post.lua');
    const headers = Object.entries(request.headers)
      .map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}`)
      .join('\n');
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(request.body)}\n${headers}\n${WRK_REPORT}`);
    const run = startProcess('wrk', [
      '-t1',
      `-c${connections}`,
      `-d${seconds}s`,
      '-s',
      script,
      `${target.url}${request.path}`,
    ]);
    const output: string[] = [];
    run.child.stdout?.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
    if ((await run.exited) !== 0) throw new Error(`wrk against ${target.name} failed:\n${run.output()}`);
    const line = /^WRK (.*)$/m.exec(output.join(''))?.[1];
    if (!line) throw new Error(`wrk against ${target.name} printed no summary:\n${run.output()}`);
    const report = JSON.parse(line) as {
      requests: number;
      durationUs: number;
      p50Us: number;
      p99Us: number;
      non2xx: number;
      errors: number;
    };
    return {
      failed: report.non2xx + report.errors,
      rps: report.requests / (report.durationUs / 1e6),
      p50Ms: report.p50Us / 1000,
      p99Ms: report.p99Us / 1000,
      requests: report.requests,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** One keep-alive connection, one request at a time: latency at microsecond precision. */
async function probeLatency(
  target: LoadTarget,
  request: LoadRequest,
  count: number,
): Promise<{ p50: number; p99: number; failed: number }> {
  let failed = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const started = performance.now();
      const req = http.request(`${target.url}${request.path}`, { method: 'POST', agent, headers: request.headers });
      req.on('response', (res) => {
        if (res.statusCode !== 200) failed += 1;
        res.resume();
        res.on('end', () => resolve(performance.now() - started));
      });
      req.on('error', reject);
      req.end(request.body);
    });
  for (let i = 0; i < count / 10; i += 1) await once();
  const samples: number[] = [];
  for (let i = 0; i < count; i += 1) samples.push(await once());
  agent.destroy();
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 0.5), p99: percentile(samples, 0.99), failed };
}

async function cannon(
  target: LoadTarget,
  request: LoadRequest,
  connections: number,
  seconds: number,
): Promise<{ rps: number; p50Ms: number; p99Ms: number; requests: number; failed: number }> {
  const result = await autocannon({
    url: `${target.url}${request.path}`,
    method: 'POST',
    headers: request.headers,
    body: request.body,
    connections,
    duration: seconds,
  });
  return {
    failed: result.non2xx + result.errors,
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
  };
}

/**
 * Loads the target for `seconds` with one tool. autocannon reports whole milliseconds: at one
 * connection its latency comes from a sequential probe at microsecond precision instead.
 */
export async function measureLoad(
  tool: LoadTool,
  target: LoadTarget,
  request: LoadRequest,
  connections: number,
  seconds: number,
  probeRequests: number,
): Promise<LoadResult> {
  const before = cpuMicros(target.pid);
  const run =
    tool === 'wrk'
      ? await wrk(target, request, connections, seconds)
      : await cannon(target, request, connections, seconds);
  const after = cpuMicros(target.pid);
  const cpuUsPerRequest =
    before === null || after === null || run.requests === 0 ? null : (after - before) / run.requests;
  const load = loadAverage();
  if (tool === 'autocannon' && connections === 1) {
    const probed = await probeLatency(target, request, probeRequests);
    return {
      rps: run.rps,
      p50Ms: probed.p50,
      p99Ms: probed.p99,
      cpuUsPerRequest,
      load,
      failed: run.failed + probed.failed,
    };
  }
  return { rps: run.rps, p50Ms: run.p50Ms, p99Ms: run.p99Ms, cpuUsPerRequest, load, failed: run.failed };
}
