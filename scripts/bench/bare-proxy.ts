// The bench's baseline: the least a Node proxy does (express + http-proxy-middleware, no auth,
// no metering). `bare-proxy.ts <port> <target>`.
import { Agent } from 'node:http';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';

const [port, target] = process.argv.slice(2);
const app = express();
app.use(createProxyMiddleware({ target, agent: new Agent({ keepAlive: true, maxSockets: 4096 }) }));
app.listen(Number(port), '127.0.0.1', () => process.stdout.write(`bare proxy on ${port}\n`));
