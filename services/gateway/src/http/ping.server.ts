import { createServer, type Server } from 'node:http';

/**
 * PORT_HEALTH: `GET /ping` with RunPod load-balancer semantics: 204 while initializing, 200 once
 * ready. It reads the background poll's answer and never calls a backend.
 */
export function createPingServer(isReady: () => boolean): Server {
  return createServer((req, res) => {
    if (req.url === '/ping' && (req.method === 'GET' || req.method === 'HEAD')) {
      const ready = isReady();
      res.writeHead(ready ? 200 : 204, ready ? { 'content-type': 'application/json' } : {});
      res.end(ready && req.method === 'GET' ? '{"status":"ready"}' : undefined);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ error: { message: 'Not found.', type: 'not_found_error', param: null, code: 'unknown_route' } }),
    );
  });
}
