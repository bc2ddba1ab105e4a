import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '@gguf-gateway/testkit';

const run = promisify(execFile);

describe('a secret file the service user cannot read', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'file-access-'));
    chmodSync(dir, 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is reported with its owner, its mode and the uid that needs it, not as a bad value', async () => {
    const file = join(dir, 'inference_api_key');
    writeFileSync(file, 'sk-inference-0123456789\n', { mode: 0o600 });
    // The config loader as a container's service user sees the file: as another uid than its owner's.
    const script = `import { loadConfig, z } from '@gguf-gateway/shared';
      try { loadConfig({ INFERENCE_API_KEY: z.string().optional() }, { INFERENCE_API_KEY_FILE: ${JSON.stringify(file)} }, { fileVariables: ['INFERENCE_API_KEY'] }); }
      catch (err) { console.log(err.message); }`;
    const asOther = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (!asOther.uid) chmodSync(file, 0o000);
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: repoRoot,
      ...asOther,
    });
    const owner = process.getuid?.() ?? 0;
    const uid = asOther.uid ?? owner;
    const mode = asOther.uid ? '0600' : '0000';
    assert.match(
      stdout,
      new RegExp(
        `INFERENCE_API_KEY_FILE: cannot read .* \\(EACCES: owned by ${owner}:\\d+ with mode ${mode}, and this process runs as uid ${uid}`,
      ),
    );
  });
});
