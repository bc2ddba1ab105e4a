import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { createLogger } from '@gguf-gateway/shared';
import { LogCapture } from '@gguf-gateway/testkit';
import { GateFailure, GateRunner, type Gate } from '../../src/gates/gate-runner.js';

function gate(name: string, check: Gate['check'], extra: Partial<Gate> = {}): Gate {
  return { name, waitsFor: `${name} to be there`, fix: `Fix ${name}.`, timeoutMs: 1000, retry: false, check, ...extra };
}

describe('start gates', () => {
  let logs: LogCapture;
  const logger = () => createLogger({ service: 'orchestrator', destination: logs });
  beforeEach(() => (logs = new LogCapture()));

  it('runs the gates in order and logs what each one waits for', async () => {
    const order: string[] = [];
    const runner = new GateRunner(
      ['a', 'b', 'c'].map((n) => gate(n, async () => void order.push(n))),
      logger(),
    );
    await runner.run();
    assert.deepEqual(order, ['a', 'b', 'c']);
    assert.deepEqual(
      runner.statuses().map((s) => s.state),
      ['passed', 'passed', 'passed'],
    );
    assert.ok(logs.records().some((r) => r.msg === 'waiting for b to be there'));
  });

  it('retries a dependency until it answers', async () => {
    let calls = 0;
    const runner = new GateRunner(
      [
        gate(
          'redis',
          async () => {
            if (++calls < 3) throw new Error('connection refused');
          },
          { retry: true },
        ),
      ],
      logger(),
      undefined,
      10,
    );
    await runner.run();
    assert.equal(runner.statuses()[0]!.attempts, 3);
    assert.equal(runner.statuses()[0]!.lastError, null);
  });

  it('keeps no abort listener per retry while a dependency takes many retries', async () => {
    const listeners: number[] = [];
    const runner = new GateRunner(
      [
        gate(
          'redis',
          async (signal) => {
            listeners.push(getEventListeners(signal, 'abort').length);
            if (listeners.length < 15) throw new Error('connection refused');
          },
          { retry: true },
        ),
      ],
      logger(),
      undefined,
      1,
    );
    await runner.run();
    assert.equal(listeners.length, 15);
    assert.equal(listeners.at(-1), listeners[0], `abort listeners per attempt: ${listeners.join(', ')}`);
  });

  it('fails at its timeout naming the gate, the last error and what to fix, and stops there', async () => {
    let laterRan = false;
    const runner = new GateRunner(
      [
        gate('postgres', () => Promise.reject(new Error('ECONNREFUSED')), { retry: true, timeoutMs: 150 }),
        gate('later', async () => void (laterRan = true)),
      ],
      logger(),
      undefined,
      20,
    );
    const err = await runner.run().then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof GateFailure);
    assert.equal(err.gate, 'postgres');
    assert.match(
      err.message,
      /gate postgres failed: no success within 150 ms \(last error: ECONNREFUSED\)\. Fix postgres\./,
    );
    assert.equal(laterRan, false);
    const [postgres, later] = runner.statuses();
    assert.equal(postgres!.state, 'failed');
    assert.equal(later!.state, 'pending');
  });

  it('fails a bad file at once instead of waiting for it to change', async () => {
    const started = Date.now();
    const runner = new GateRunner(
      [gate('keys-file', () => Promise.reject(new Error('line 3: key has no secret')), { timeoutMs: 5000 })],
      logger(),
    );
    await assert.rejects(runner.run(), /line 3: key has no secret\. Fix keys-file\./);
    assert.ok(Date.now() - started < 1000);
  });

  it('does not let a hung check hold its gate past the timeout', async () => {
    const runner = new GateRunner([gate('hung', () => new Promise(() => undefined), { timeoutMs: 100 })], logger());
    await assert.rejects(runner.run(), /gate hung failed: no success within 100 ms/);
  });

  it('marks a gate that does not apply as skipped', async () => {
    const runner = new GateRunner(
      [gate('model', async () => ({ skipped: true, detail: 'none configured' }))],
      logger(),
    );
    await runner.run();
    assert.deepEqual(
      runner.statuses().map((s) => [s.state, s.detail]),
      [['skipped', 'none configured']],
    );
  });
});
