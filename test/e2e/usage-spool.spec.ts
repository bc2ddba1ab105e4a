// No usage event is lost while Redis is gone: the real gateway, auth and metrics processes under
// load, their Redis (a private one, persistent like compose's) SIGKILLed for 10 s and started
// again. The gateway spools what Redis cannot take and replays it; the metrics service writes the
// rows. Every request that got an answer has its row.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  PrivateRedis,
  createTestDatabase,
  freePort,
  startAuthProcess,
  startGatewayProcess,
  startServiceProcess,
  stopProcess,
  waitFor,
  type ManagedProcess,
  type TestDatabase,
} from '@gguf-gateway/testkit';
import { FakeOpenAI } from '../../services/gateway/test/support/fake-openai.js';

const USER = 'sk-spool-user-0123456789';
const CLIENTS = 6;
const OUTAGE_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('usage events while Redis is killed and comes back', function () {
  this.timeout(120_000);
  let redis: PrivateRedis;
  let db: TestDatabase;
  let fake: FakeOpenAI;
  let dir: string;
  const procs: ManagedProcess[] = [];
  let apiUrl: string;

  before(async () => {
    redis = await PrivateRedis.start({ persistent: true });
    db = await createTestDatabase({ migrate: true });
    fake = await FakeOpenAI.start();
    dir = mkdtempSync(join(tmpdir(), 'gg-usage-spool-e2e-'));
    writeFileSync(join(dir, 'api_keys'), `spool:${USER}\n`, { mode: 0o600 });
    writeFileSync(
      join(dir, 'backends.yaml'),
      `models: {m: {tiers: [[fake]]}}\nbackends: {fake: {kind: llamacpp, url: "${fake.url}"}}\n`,
    );
    const [authPort, metricsPort, apiPort, healthPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const shared = { redisUrl: redis.url, redisPrefix: 'spool:' };
    procs.push(
      startAuthProcess({ ...shared, port: authPort, keysFile: join(dir, 'api_keys') }),
      startServiceProcess('metrics', { ...shared, port: metricsPort }, { DATABASE_URL: db.url }),
      startGatewayProcess({
        ...shared,
        port: apiPort,
        healthPort,
        authUrl: `http://127.0.0.1:${authPort}`,
        backendsFile: join(dir, 'backends.yaml'),
        env: { USAGE_SPOOL_DIR: join(dir, 'spool'), READINESS_POLL_MS: '200' },
      }),
    );
    apiUrl = `http://127.0.0.1:${apiPort}`;
    for (const port of [authPort, metricsPort, apiPort]) {
      await waitFor(
        `/readyz on ${port}`,
        async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200 || null,
        20_000,
        100,
      );
    }
  });

  after(async () => {
    for (const proc of procs.reverse()) await stopProcess(proc);
    await fake?.stop();
    await redis?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes one usage row for every answered request, the 10 s outage included', async () => {
    let running = true;
    const answered: number[] = [];
    const client = async () => {
      while (running) {
        const res = await fetch(`${apiUrl}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'm', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }),
        }).catch(() => null);
        if (res) {
          await res.arrayBuffer();
          answered.push(res.status);
        }
      }
    };
    const clients = Array.from({ length: CLIENTS }, client);
    await sleep(2000);
    await redis.kill();
    const killedAt = answered.length;
    await sleep(OUTAGE_MS);
    const duringOutage = answered.length - killedAt;
    await redis.start();
    await sleep(3000);
    running = false;
    await Promise.all(clients);

    assert.ok(duringOutage > 20, `${duringOutage} requests were answered while Redis was down`);
    const pool = new pg.Pool({ connectionString: db.url });
    try {
      const rows = async () => Number((await pool.query('SELECT count(*) AS n FROM usage_events')).rows[0].n);
      const counted = await waitFor(
        `${answered.length} usage rows`,
        async () => {
          const n = await rows();
          return n >= answered.length ? n : null;
        },
        30_000,
        250,
      ).catch(async () => rows());
      assert.equal(counted, answered.length, `statuses answered: ${JSON.stringify(countBy(answered))}`);
    } finally {
      await pool.end();
    }
    // Everything spooled was replayed: the spool is empty again.
    await waitFor(
      'an empty spool',
      async () => readdirSync(join(dir, 'spool')).filter((n) => n.endsWith('.jsonl')).length === 0 || null,
      5000,
      100,
    );
  });
});

function countBy(values: number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}
