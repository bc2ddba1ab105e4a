import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@gguf-gateway/shared';
import { freePort, LogCapture } from '@gguf-gateway/testkit';
import { pingPostgres } from '../../src/dependency.probes.js';
import { localPostgresSpec, localPostgresUrl, postgresBinDir } from '../../src/supervisor/local-stores.js';
import { ProcessSupervisor } from '../../src/supervisor/process.supervisor.js';

describe('local Postgres of the all-in-one stack (real postgres)', function () {
  this.timeout(60_000);
  let root: string;
  let supervisor: ProcessSupervisor;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'gg-local-pg-'));
    supervisor = new ProcessSupervisor(createLogger({ service: 'orchestrator', destination: new LogCapture() }), {
      readyTimeoutMs: 30_000,
      backoffMs: 300,
      backoffMaxMs: 5000,
      readyIntervalMs: 100,
    });
  });

  afterEach(async () => {
    await supervisor.stopAll();
    rmSync(root, { recursive: true, force: true });
  });

  it('starts under a DATA_DIR whose path is longer than a Unix socket path may be, over TCP only', async () => {
    // A volume mount point deep enough that <DATA_DIR>/postgres/data/.s.PGSQL.<port> passes 107 bytes.
    const dataDir = join(root, 'volumes', 'a-rather-long-volume-name'.repeat(3), 'data');
    mkdirSync(dataDir, { recursive: true });
    // As root, Postgres runs as the postgres user: it must reach DATA_DIR.
    for (let dir = dataDir; dir.startsWith(root); dir = join(dir, '..')) chmodSync(dir, 0o755);
    assert.ok(join(dataDir, 'postgres', 'data', '.s.PGSQL.65535').length > 107);

    const port = await freePort();
    await supervisor.start(localPostgresSpec(dataDir, port, postgresBinDir()));
    await pingPostgres(localPostgresUrl(port));
    const cluster = join(dataDir, 'postgres', 'data');
    assert.deepEqual(
      readdirSync(cluster).filter((f) => f.startsWith('.s.PGSQL')),
      [],
      'no Unix socket in the data directory',
    );
  });
});
