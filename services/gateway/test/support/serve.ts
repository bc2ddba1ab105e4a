// Runs a test double as its own process, for the bench: `serve.ts fake-openai <port> [chunks]
// [chunkIntervalMs]` or `serve.ts auth-stub <port> <redisUrl> <redisPrefix> <key>...`.
import { Redis } from 'ioredis';
import { AuthStub } from './auth-stub.js';
import { FakeOpenAI } from './fake-openai.js';

const [what, port, ...rest] = process.argv.slice(2);
if (what === 'fake-openai') {
  await FakeOpenAI.start({ chunks: Number(rest[0] ?? 3), chunkIntervalMs: Number(rest[1] ?? 0) }, Number(port));
} else if (what === 'auth-stub') {
  const [redisUrl, prefix, ...secrets] = rest;
  await AuthStub.start(
    {
      keys: secrets.map((secret, i) => ({ id: `bench-${i}`, secret, rpm: 1_000_000_000 })),
      redis: new Redis(redisUrl!),
      redisPrefix: prefix,
    },
    Number(port),
  );
} else {
  process.stderr.write('usage: serve.ts fake-openai|auth-stub <port> ...\n');
  process.exit(2);
}
process.stdout.write(`${what} listening on ${port}\n`);
