import assert from 'node:assert/strict';
import { PrivateRedis, waitFor } from '@gguf-gateway/testkit';
import { authorize, KeysFile, post, startAuth, type AuthInstance } from './auth-harness.js';

const STEADY = 'sk-steady-00000000000000001';
const OUTAGE = 'sk-outage-00000000000000002';
const AFTER = 'sk-after-000000000000000003';

async function metric(auth: AuthInstance, name: string): Promise<string | undefined> {
  const text = await (await fetch(`${auth.url}/metrics`)).text();
  return new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1];
}

describe('auth while Redis dies and comes back', function () {
  this.timeout(20_000);
  const prefix = 'auth-outage:';
  let redis: PrivateRedis;
  let keysFile: KeysFile;
  let instances: AuthInstance[] = [];

  before(async () => {
    redis = await PrivateRedis.start();
    keysFile = await KeysFile.create(
      [`steady:${STEADY} concurrency=50`, `outage:${OUTAGE}:5`, `after:${AFTER}:4`].join('\n'),
    );
    const options = { redisUrl: redis.url, prefix, keysFile: keysFile.path };
    instances = await Promise.all([startAuth(options), startAuth(options)]);
  });

  after(async () => {
    await Promise.all(instances.map((i) => i.close()));
    await redis?.stop();
    await keysFile?.remove();
  });

  it('keeps answering from the insurance limiter with no 500s, then shares limits again once Redis is back', async () => {
    const statuses: number[] = [];
    let running = true;
    const traffic = (async () => {
      for (let i = 0; running; i++) {
        const auth = instances[i % 2]!;
        const res = await authorize(auth.url, { key: STEADY });
        statuses.push(res.status);
        if (res.status === 200)
          statuses.push(
            (await post(auth.url, '/v1/settle', { lease: res.body.lease, promptTokens: 3, completionTokens: 4 }))
              .status,
          );
      }
    })();

    await new Promise((r) => setTimeout(r, 300));
    await redis.kill();
    await new Promise((r) => setTimeout(r, 1000));

    // While Redis is away each instance limits on its own: rpm 5 per instance.
    const during = await Promise.all(
      Array.from({ length: 20 }, (_, i) => authorize(instances[i % 2]!.url, { key: OUTAGE })),
    );
    assert.equal(during.filter((a) => a.status === 200).length, 10, 'rpm 5 on each of the two instances');
    assert.ok(during.every((a) => a.status === 200 || a.status === 429));
    const ready = await fetch(`${instances[0]!.url}/readyz`);
    const readyBody = (await ready.json()) as { status: string; checks: Record<string, string> };
    assert.equal(ready.status, 200);
    assert.equal(readyBody.status, 'degraded');
    assert.match(readyBody.checks.redis!, /insurance limiter/);
    assert.equal(await metric(instances[0]!, 'auth_redis_degraded'), '1');

    await redis.start();
    await waitFor(
      'both instances back on Redis',
      async () => instances.every((i) => i.redis.status === 'ready'),
      10_000,
    );
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await traffic;

    assert.ok(statuses.length > 20, `traffic kept flowing (${statuses.length} answers)`);
    assert.deepEqual(
      statuses.filter((s) => s >= 500),
      [],
      'no 5xx at any point',
    );
    assert.ok(statuses.every((s) => s === 200 || s === 204));

    const shared = await Promise.all(
      Array.from({ length: 12 }, (_, i) => authorize(instances[i % 2]!.url, { key: AFTER })),
    );
    assert.equal(shared.filter((a) => a.status === 200).length, 4, 'rpm 4 shared across both instances again');
    assert.equal(await metric(instances[0]!, 'auth_redis_degraded'), '0');
    assert.equal(((await (await fetch(`${instances[1]!.url}/readyz`)).json()) as { status: string }).status, 'ready');
  });
});

describe('auth leases on a hung Redis', function () {
  this.timeout(20_000);
  const prefix = 'auth-hung:';
  const ONE_SLOT = 'sk-oneslot-0000000000000004';
  let redis: PrivateRedis;
  let keysFile: KeysFile;
  let auth: AuthInstance;

  const slotsHeld = () => auth.redis.zcard(`${prefix}auth:slots:oneslot`);

  before(async () => {
    redis = await PrivateRedis.start();
    keysFile = await KeysFile.create(`oneslot:${ONE_SLOT} concurrency=1`);
    auth = await startAuth({ redisUrl: redis.url, prefix, keysFile: keysFile.path });
    // One lease while Redis answers, so the scripts are loaded before it hangs.
    const warm = await authorize(auth.url, { key: ONE_SLOT });
    await post(auth.url, '/v1/settle', { lease: warm.body.lease, promptTokens: 1, completionTokens: 1 });
  });

  after(async () => {
    await auth?.close();
    await redis?.stop();
    await keysFile?.remove();
  });

  it('frees the Redis slot of an acquire that timed out but ran late, when the lease is settled', async () => {
    // Redis stops answering for longer than auth's command timeout: authorize answers from memory,
    // and the acquire it sent runs once Redis wakes.
    const hung = redis.hang(2);
    await new Promise((r) => setTimeout(r, 50));
    const during = await authorize(auth.url, { key: ONE_SLOT });
    assert.equal(during.status, 200, during.text);
    await hung;
    await waitFor('the late acquire ran', async () => (await slotsHeld()) === 1, 3000);

    const settled = await post(auth.url, '/v1/settle', {
      lease: during.body.lease,
      promptTokens: 1,
      completionTokens: 1,
    });
    assert.equal(settled.status, 204);
    assert.equal(await slotsHeld(), 0, 'no slot left held in Redis');
    const after = await authorize(auth.url, { key: ONE_SLOT });
    assert.equal(after.status, 200, `the key's one slot is free again: ${after.text}`);
    await post(auth.url, '/v1/settle', { lease: after.body.lease, promptTokens: 1, completionTokens: 1 });
  });

  it('frees the Redis slot of a late acquire whose settle was sent while Redis still slept', async () => {
    const hung = redis.hang(2);
    await new Promise((r) => setTimeout(r, 50));
    const during = await authorize(auth.url, { key: ONE_SLOT });
    assert.equal(during.status, 200, during.text);
    const settled = await post(auth.url, '/v1/settle', {
      lease: during.body.lease,
      promptTokens: 1,
      completionTokens: 1,
    });
    assert.equal(settled.status, 204);
    await hung;
    await waitFor('Redis ran the acquire, then the take', async () => (await slotsHeld()) === 0, 3000);
    const after = await authorize(auth.url, { key: ONE_SLOT });
    assert.equal(after.status, 200, `the key's one slot is free again: ${after.text}`);
    await post(auth.url, '/v1/settle', { lease: after.body.lease, promptTokens: 1, completionTokens: 1 });
  });
});
