// Docker HEALTHCHECK without curl: exits 0 when GET <url> answers 2xx (or exactly <status>) within
// 4 s, else 1. Usage: node healthcheck.mjs http://127.0.0.1:8090/readyz [status]
import process from 'node:process';

const url = process.argv[2] ?? 'http://127.0.0.1:8080/healthz';
const expected = process.argv[3] ? Number(process.argv[3]) : null;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  process.exit((expected === null ? res.ok : res.status === expected) ? 0 : 1);
} catch {
  process.exit(1);
}
