import assert from 'node:assert/strict';
import { AdminStandIn, runCli } from '../support/cli-harness.js';

// GET /admin/v1/models of a gateway serving models on demand (the gateway's admin router's shape).
const MODELS = [
  {
    name: 'qwen2.5-7b-instruct-q4_k_m',
    aliases: ['default'],
    status: 'loaded',
    reason: null,
    sizeBytes: 4_683_073_184,
    bytes: 4_683_073_184,
    quantization: 'Q4_K_M',
    contextLength: 32768,
    architecture: 'qwen2',
    lastUsedAt: '2026-11-30T06:58:12.345Z',
    pulledAt: null,
  },
  {
    name: 'tiny',
    aliases: [],
    status: 'available',
    reason: null,
    sizeBytes: 479_136,
    bytes: 479_136,
    quantization: 'F32',
    contextLength: 256,
    architecture: 'llama',
    lastUsedAt: null,
    pulledAt: '2026-11-29T10:00:00.000Z',
  },
  {
    name: 'broken',
    aliases: [],
    status: 'failed',
    reason: 'not a GGUF file (bad magic)',
    sizeBytes: 65_536,
    bytes: 65_536,
    quantization: null,
    contextLength: null,
    architecture: null,
    lastUsedAt: null,
    pulledAt: null,
  },
];

describe('gguf-gateway models and pull against the admin API', function () {
  this.timeout(20_000);
  let admin: AdminStandIn;

  before(async () => {
    admin = await AdminStandIn.start();
  });

  after(() => admin.stop());

  it('lists every model with its size, quantisation, context, architecture, status and when it was last used', async () => {
    admin.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: MODELS }));
    };
    const run = await runCli(admin.url, {}, 'models');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(admin.seen.at(-1), 'GET /admin/v1/models Bearer sk-admin-test');
    assert.deepEqual(run.stdout.trimEnd().split('\n'), [
      'NAME                        SIZE       QUANT   CONTEXT  ARCH   STATUS                               LAST USED (UTC)',
      'qwen2.5-7b-instruct-q4_k_m  4.4 GiB    Q4_K_M  32768    qwen2  loaded                               2026-11-30 06:58:12',
      'tiny                        467.9 KiB  F32     256      llama  available',
      'broken                      64.0 KiB                           failed: not a GGUF file (bad magic)',
    ]);
  });

  it('ends a pull by naming the model to call, a split model without its part suffix', async () => {
    const result = {
      name: 'Qwen2.5-72B-Instruct-Q4_K_M-00001-of-00002.gguf',
      path: '/models/Qwen2.5-72B-Instruct-Q4_K_M-00001-of-00002.gguf',
      bytes: 1024,
      sha256: 'a'.repeat(64),
      alreadyPresent: false,
      files: [],
    };
    admin.handler = (req, res) => {
      if (req.method === 'POST') {
        res
          .writeHead(202, { 'content-type': 'application/json' })
          .end(JSON.stringify({ jobId: 'j1', deduplicated: false }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const job = { id: 'j1', state: 'completed', progress: null, error: null, result };
      res.end(`event: completed\ndata: ${JSON.stringify(job)}\n\n`);
    };
    const run = await runCli(
      admin.url,
      {},
      'pull',
      'acme/Qwen2.5-72B-GGUF',
      'Qwen2.5-72B-Instruct-Q4_K_M-00001-of-00002.gguf',
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${result.path}\n`);
    assert.equal(run.stderr.trimEnd().split('\n').at(-1), 'call it as: Qwen2.5-72B-Instruct-Q4_K_M');
  });
});
