// The bench's baseline: the least a Node proxy does (express + http-proxy-middleware, no auth,
// no metering). `bare-proxy.ts <port> <target>`.
import { Agent } from 'node:http';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';

const [port, target] = process.argv.slice(2);
const app = express();
app.use(createProxyMiddleware({ target, agent: new Agent({ keepAlive: true, maxSockets: 4096 }) }));
// The gateway's listen backlog (HTTP_MAX_CONNECTIONS), so 2,000 clients connecting at once are not
// reset by the default 511 here either.
app.listen({ port: Number(port), host: '127.0.0.1', backlog: 4096 }, () =>
  process.stdout.write(`bare proxy on ${port}\n`),
);
