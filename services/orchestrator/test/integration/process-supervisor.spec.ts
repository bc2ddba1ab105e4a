import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@gguf-gateway/shared';
import { freePort, LogCapture, waitFor } from '@gguf-gateway/testkit';
import { httpOk } from '../../src/dependency.probes.js';
import { ProcessSupervisor, type ProcessSpec } from '../../src/supervisor/process.supervisor.js';

const fakeService = fileURLToPath(new URL('../fixtures/fake-service.mjs', import.meta.url));

describe('process supervisor (real processes)', function () {
  this.timeout(30_000);
  let dir: string;
  let eventsFile: string;
  let supervisor: ProcessSupervisor;
  let logs: LogCapture;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gg-supervisor-'));
    eventsFile = join(dir, 'events');
    logs = new LogCapture();
    supervisor = new ProcessSupervisor(createLogger({ service: 'orchestrator', destination: logs }), {
      readyTimeoutMs: 10_000,
      backoffMs: 300,
      backoffMaxMs: 5000,
      readyIntervalMs: 50,
    });
  });

  afterEach(async () => {
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  async function spec(name: string, env: Record<string, string> = {}): Promise<ProcessSpec & { port: number }> {
    const port = await freePort();
    return {
      name,
      port,
      command: process.execPath,
      args: [fakeService],
      env: { ...process.env, NAME: name, PORT: String(port), EVENTS_FILE: eventsFile, ...env },
      ready: () => httpOk(`http://127.0.0.1:${port}/readyz`),
      stopGraceMs: 5000,
    };
  }

  function events(): { at: number; name: string; event: string }[] {
    return readFileSync(eventsFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => {
        const [at, name, event] = line.split(' ');
        return { at: Number(at), name: name!, event: event! };
      });
  }

  it('starts each process only after the previous one is ready', async () => {
    await supervisor.start(await spec('first', { READY_DELAY_MS: '400' }));
    await supervisor.start(await spec('second', { READY_DELAY_MS: '200' }));
    await supervisor.start(await spec('third'));
    assert.deepEqual(
      events().map((e) => `${e.name} ${e.event}`),
      ['first start', 'first ready', 'second start', 'second ready', 'third start', 'third ready'],
    );
    assert.deepEqual(
      supervisor.statuses().map((s) => s.state),
      ['ready', 'ready', 'ready'],
    );
  });

  it('restarts a crashed process with a backoff that doubles while it keeps crashing', async () => {
    await supervisor.start(await spec('flaky'));
    const pidOf = () => supervisor.statuses()[0]!.pid;
    const crash = async () => {
      const pid = pidOf()!;
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      await waitFor('a new process that is ready', async () => {
        const s = supervisor.statuses()[0]!;
        return s.state === 'ready' && s.pid !== pid ? true : null;
      });
      const restartedAt = events()
        .filter((e) => e.event === 'start')
        .at(-1)!.at;
      return restartedAt - killedAt;
    };
    const first = await crash();
    const second = await crash();
    assert.ok(first >= 300, `first restart after ${first} ms, backoff 300`);
    assert.ok(second >= 600, `second restart after ${second} ms, backoff doubled to 600`);
    assert.equal(supervisor.statuses()[0]!.restarts, 2);
    assert.ok(
      logs.records().some((r) => String(r.msg).startsWith('flaky exited (signal SIGKILL); restarting in 600 ms')),
    );
  });

  it('lets an in-flight stream finish on stop, and stops in reverse order of start', async () => {
    await supervisor.start(await spec('backend'));
    const front = await spec('front', { SLOW_MS: '1000' });
    await supervisor.start(front);
    const response = await fetch(`http://127.0.0.1:${front.port}/slow`);
    const body = response.text();
    await supervisor.stopAll();
    assert.match(await body, /chunk 4\ndone\n$/);
    const stops = events()
      .filter((e) => e.event === 'sigterm' || e.event === 'exit')
      .map((e) => `${e.name} ${e.event}`);
    assert.deepEqual(stops, ['front sigterm', 'front exit', 'backend sigterm', 'backend exit']);
    assert.deepEqual(
      supervisor.statuses().map((s) => s.state),
      ['stopped', 'stopped'],
    );
  });

  it('fails the start with the output of a process that exits before it is ready', async () => {
    const broken: ProcessSpec = {
      name: 'broken',
      command: process.execPath,
      args: ['-e', 'console.error("Invalid environment variables: REDIS_URL: required"); process.exit(1)'],
      ready: async () => false,
      stopGraceMs: 1000,
    };
    await assert.rejects(
      supervisor.start(broken),
      /broken exited while starting \(exit code 1\):\nInvalid environment variables: REDIS_URL: required/,
    );
  });

  it('waits for a process with its own ready timeout past the default one', async () => {
    const slow = { ...(await spec('llama', { READY_DELAY_MS: '800' })), readyTimeoutMs: 5000 };
    const quick = new ProcessSupervisor(createLogger({ service: 'orchestrator', destination: logs }), {
      readyTimeoutMs: 200,
      backoffMs: 300,
      backoffMaxMs: 5000,
      readyIntervalMs: 50,
    });
    try {
      await quick.start(slow);
      assert.equal(quick.statuses()[0]?.state, 'ready');
    } finally {
      await quick.stopAll();
    }
  });

  it('refuses to start a process once stopping has begun', async () => {
    await supervisor.stopAll();
    await assert.rejects(supervisor.start(await spec('late')), /not starting late: stopping/);
    assert.deepEqual(supervisor.statuses(), []);
  });
});
