// What a caller without a key can make the gateway do: nothing before the key is checked. Bodies
// are read only for a valid key, nesting is bounded before JSON.parse, and slow or many
// connections are cut by the server's own limits.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { repoRoot } from '@gguf-gateway/testkit';
import type { AuthStub } from '../support/auth-stub.js';
import { startFakeBackendStack, type FakeBackendStack } from '../support/fake-backend-stack.js';
import type { GatewayHarness } from '../support/gateway-harness.js';

const USER = 'sk-user-limits-0123456789';
const BODY_LIMIT = 4 * 1024 * 1024 + 1024;

/** The flood, from a process of its own: resolves with the statuses it was answered. */
function floodWithoutKey(url: string, count: number, bytes: number, onSending: () => void): Promise<number[]> {
  const script = join(repoRoot, 'services/gateway/test/support/unauthenticated-flood.main.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, url, String(count), String(bytes)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    if (!out.includes('sending') && (out + chunk.toString('utf8')).includes('sending')) onSending();
    out += chunk.toString('utf8');
  });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('[')) resolve(JSON.parse(last) as number[]);
      else reject(new Error(`the flood process exited ${code}: ${out}`));
    }),
  );
}

async function timed(run: () => Promise<number>): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const status = await run();
  return { status, ms: performance.now() - started };
}

describe('requests without a key cost the gateway no body work', function () {
  let auth: AuthStub;
  let gateway: GatewayHarness;
  let stack: FakeBackendStack;

  before(async () => {
    ({ auth, gateway } = stack = await startFakeBackendStack({ user: USER, bodyLimitBytes: BODY_LIMIT }));
  });

  after(() => stack.stop());

  const chat = () =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
    }).then(async (res) => (await res.arrayBuffer(), res.status));
  // /ping answers 204 here (the harness runs no readiness poll): any answer in time counts.
  const ping = () =>
    fetch(`${gateway.url}/ping`).then(async (res) => (await res.arrayBuffer(), res.status === 204 ? 200 : res.status));

  it('answers 20 unauthenticated 4 MB nested bodies with 401 while a keyed request and /ping answer within 50 ms', async () => {
    // Warm the key check and the connections, then measure this machine's own latency without
    // floods: on a shared 2-core CI box its tail is tens to hundreds of ms, and the flooding process
    // competes for the same cores. So: neither an answer nor the gateway's event loop (this process)
    // may stall for a second (one JSON.parse of such a body alone takes seconds), and the usual
    // answer (p50) may take at most 50 ms more than when quiet.
    const baseline: { status: number; ms: number }[] = [];
    const quietLoop = monitorEventLoopDelay({ resolution: 10 });
    quietLoop.enable();
    for (let round = 0; round < 10; round++) baseline.push(await timed(chat), await timed(ping));
    quietLoop.disable();
    const floodedLoop = monitorEventLoopDelay({ resolution: 10 });
    let sending!: () => void;
    const started = new Promise<void>((resolve) => (sending = resolve));
    let done = false;
    const flood = floodWithoutKey(gateway.url, 20, 4 * 1024 * 1024, sending).finally(() => (done = true));
    await started;
    floodedLoop.enable();
    const samples: { status: number; ms: number }[] = [];
    // Sample while the floods are in flight (and a little after, on a fast machine), 10 rounds at least.
    for (let round = 0; round < 10 || (!done && round < 200); round++) {
      samples.push(await timed(chat), await timed(ping));
    }
    const statuses = await flood;
    floodedLoop.disable();
    // Each gets 401, or (0) sees the connection the gateway closed after its 401 before reading the
    // answer: the upload was still under way. Auth's log below shows each was refused from its headers.
    assert.deepEqual(
      statuses.filter((s) => s !== 401 && s !== 0),
      [],
      'every unauthenticated flood is refused',
    );
    assert.ok(statuses.filter((s) => s === 401).length >= 10, `statuses: ${statuses.join(',')}`);
    assert.ok(
      samples.every((s) => s.status === 200),
      `every sample answered 200: ${JSON.stringify(samples)}`,
    );
    const figures = (of: { ms: number }[]) => {
      const sorted = of.map((s) => s.ms).sort((x, y) => x - y);
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      return { p50: at(0.5), p90: at(0.9), max: sorted[sorted.length - 1]! };
    };
    const quiet = figures(baseline);
    const flooded = figures(samples);
    const lag = (h: IntervalHistogram) => `p99 ${(h.percentile(99) / 1e6).toFixed(0)} max ${(h.max / 1e6).toFixed(0)}`;
    const report =
      `answers quiet ${JSON.stringify(quiet)}, flooded ${JSON.stringify(flooded)}; event loop lag ` +
      `quiet ${lag(quietLoop)}, flooded ${lag(floodedLoop)} (ms)`;
    assert.ok(flooded.max < 1000, report);
    assert.ok(floodedLoop.max / 1e6 < 1000, report);
    assert.ok(flooded.p50 < quiet.p50 + 50, report);
    // The key was checked from the headers: auth saw the 20 floods only as identify calls.
    assert.equal(auth.identifications.filter((r) => r.key === '').length, 20);
    assert.equal(auth.authorizations.filter((r) => r.key === '').length, 0);
  });

  it('refuses a keyed body nested deeper than 400 levels with 400 before parsing it', async () => {
    const deep = (levels: number) =>
      fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
        body: `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"[[[{{\\"","x":${'['.repeat(levels - 3)}${']'.repeat(levels - 3)}}]}`,
      });
    const refused = await deep(402);
    assert.equal(refused.status, 400);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'json_too_deep');
    // Brackets inside strings do not count: 400 levels of real nesting still reach the backend.
    const accepted = await deep(400);
    assert.equal(accepted.status, 200, await accepted.text());
  });
});

describe('the API server bounds slow and many connections', function () {
  let gateway: GatewayHarness;
  let stack: FakeBackendStack;

  before(async () => {
    ({ gateway } = stack = await startFakeBackendStack({
      user: USER,
      serverLimits: { headersTimeoutMs: 500, requestTimeoutMs: 1000, maxConnections: 5 },
    }));
  });

  after(() => stack.stop());

  const port = () => Number(new URL(gateway.url).port);

  /** Opens a connection, sends `head`, and resolves with what the server sent before closing it. */
  function trickle(head: string, everyMs: number, byte: string): Promise<{ answer: string; ms: number }> {
    return new Promise((resolve) => {
      const started = performance.now();
      const socket = net.connect(port(), '127.0.0.1', () => socket.write(head));
      let answer = '';
      const timer = setInterval(() => socket.writable && socket.write(byte), everyMs);
      socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ answer, ms: performance.now() - started });
      });
    });
  }

  it('cuts a client that sends its headers too slowly with 408 after HTTP_HEADERS_TIMEOUT_MS', async () => {
    const { answer, ms } = await trickle('POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n', 100, 'x-slow: 1\r\n');
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.ok(ms < 2500, `cut after ${ms.toFixed(0)} ms`);
  });

  it('cuts a keyed upload that trickles its body with 408 after HTTP_REQUEST_TIMEOUT_MS', async () => {
    const head =
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n' +
      `authorization: Bearer ${USER}\r\ncontent-length: 100000\r\n\r\n{"model":"m","messages":[`;
    const { answer, ms } = await trickle(head, 50, ' ');
    assert.match(answer, /^HTTP\/1\.1 408/);
    assert.ok(ms < 3000, `cut after ${ms.toFixed(0)} ms`);
  });

  it('closes connections past HTTP_MAX_CONNECTIONS at once and serves again when they go', async () => {
    const held = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const socket = net.connect(port(), '127.0.0.1', () => resolve(socket));
            socket.on('error', () => undefined);
          }),
      ),
    );
    const extra = await trickle('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n', 1000, '');
    assert.equal(extra.answer, '', 'the sixth connection is closed without an answer');
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal((await fetch(`${gateway.url}/healthz`)).status, 200);
  });
});
