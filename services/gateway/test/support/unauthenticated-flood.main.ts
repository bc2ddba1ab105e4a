// Sends bodies of nested brackets without a key from a process of its own, so that the test
// process measures only the gateway: `unauthenticated-flood.main.ts <gateway url> <count> <bytes>`.
// Prints `sending`, then the statuses answered as one JSON line (0: no answer).
import http from 'node:http';

const [url, count, bytes] = process.argv.slice(2);
const depth = Math.floor((Number(bytes) - 40) / 2);
const body = Buffer.from(`{"model":"m","messages":${'['.repeat(depth)}${']'.repeat(depth)}}`);

function post(): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': body.length },
      agent: false,
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    // The gateway closes the connection after its 401: the rest of the upload fails, as it should.
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

process.stdout.write('sending\n');
const statuses = await Promise.all(Array.from({ length: Number(count) }, post));
process.stdout.write(`${JSON.stringify(statuses)}\n`);
