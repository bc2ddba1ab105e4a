import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTinyLlama, writeTinyLlama } from '@gguf-gateway/gguf';
import { createLogger, parseBackendsFile } from '@gguf-gateway/shared';
import { LogCapture, writeNotGguf } from '@gguf-gateway/testkit';
import { ModelCatalog, presetOptions } from '../../src/models/model-catalog.js';
import { ModelFilesRepository } from '../../src/models/model-files.repository.js';
import type { LlamaRouterClient, RouterModel } from '../../src/models/router.client.js';

/** The router's GET /models, as a list the test sets; counts the reloads asked for. */
class RouterListStub {
  models: RouterModel[] = [];
  reloads = 0;
  async list(reload = false): Promise<RouterModel[]> {
    if (reload) this.reloads += 1;
    return this.models;
  }
}

const routerModel = (id: string, extra: Partial<RouterModel> = {}): RouterModel => ({
  id,
  aliases: [],
  status: 'unloaded',
  exitCode: null,
  preset: null,
  source: 'models_dir',
  modelPath: null,
  ...extra,
});

describe('model catalog over a real models folder', () => {
  let dir: string;
  let router: RouterListStub;
  let catalog: ModelCatalog;
  const locals = parseBackendsFile(
    'models: { chat: { aliases: [assistant], local: plain, llama: { ctxSize: 1024, parallel: 1 } } }\nbackends: {}',
  ).localModels;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gg-catalog-'));
    await writeTinyLlama(join(dir, 'plain.gguf'), 1);
    // A split model: the name drops the part suffix, the router's id is part 1's.
    const tiny = encodeTinyLlama(2);
    writeFileSync(join(dir, 'big-00001-of-00002.gguf'), tiny);
    writeFileSync(join(dir, 'big-00002-of-00002.gguf'), Buffer.alloc(1000));
    await writeNotGguf(join(dir, 'broken.gguf'));
    writeFileSync(join(dir, 'mmproj-plain.gguf'), tiny);
    mkdirSync(join(dir, '.partial'));
    writeFileSync(join(dir, '.partial', 'coming.gguf'), tiny);
    writeFileSync(join(dir, 'notes.txt'), 'not a model');
    router = new RouterListStub();
    router.models = ['plain', 'big-00001-of-00002', 'big-00002-of-00002', 'broken'].map((id) => routerModel(id));
    catalog = new ModelCatalog(
      new ModelFilesRepository(dir),
      router as unknown as LlamaRouterClient,
      () => locals,
      { gpu: false },
      createLogger({ service: 'gateway', destination: new LogCapture() }),
    );
    await catalog.refresh();
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names each GGUF by its file and a split model by its first part, hiding the other parts, partials and projectors', () => {
    assert.deepEqual(
      catalog.list().map((m) => m.name),
      ['big', 'broken', 'chat', 'plain'],
    );
    const big = catalog.find('big')!;
    assert.equal(big.routerId, 'big-00001-of-00002');
    assert.deepEqual(big.paths, [join(dir, 'big-00001-of-00002.gguf'), join(dir, 'big-00002-of-00002.gguf')]);
    assert.equal(big.sizeBytes, encodeTinyLlama(2).length + 1000);
    assert.equal(big.quantization, 'F32');
    assert.ok(big.memory!.totalBytes > big.sizeBytes);
  });

  it('lists a file that is not a GGUF as failed with the reason', () => {
    const broken = catalog.find('broken')!;
    assert.match(broken.failure!, /^not a readable GGUF file: /);
    assert.equal(broken.memory, null);
    assert.equal(catalog.find('plain')!.failure, null);
  });

  it('words a failure without the file path, which any key sees in /v1/models (the log has it)', async () => {
    // A file that cannot be opened as the catalog reads it (as under another uid, or gone meanwhile).
    class UnreadableFiles extends ModelFilesRepository {
      override async readHeader(path: string) {
        if (path.endsWith('plain.gguf')) {
          throw Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: 'EACCES' });
        }
        return super.readHeader(path);
      }
    }
    const missingLocal = parseBackendsFile(
      `models: { gone: { local: ${join(dir, 'nowhere', 'gone.gguf')} } }\nbackends: {}`,
    ).localModels;
    const logs = new LogCapture();
    const unreadable = new ModelCatalog(
      new UnreadableFiles(dir),
      router as unknown as LlamaRouterClient,
      () => missingLocal,
      { gpu: false },
      createLogger({ service: 'gateway', destination: logs }),
    );
    await unreadable.refresh();
    assert.equal(unreadable.find('plain')!.failure, 'not a readable GGUF file: EACCES');
    assert.equal(unreadable.find('gone')!.failure, 'its file is not there');
    assert.match(unreadable.find('broken')!.failure!, /^not a readable GGUF file: not a GGUF file/);
    assert.ok(unreadable.list().every((m) => !m.failure?.includes(dir)));
    assert.ok(logs.text().includes(join(dir, 'plain.gguf')), 'the log names the file');
  });

  it('serves a backends-file local entry under its own name and aliases, planned with its llama options', () => {
    const chat = catalog.find('assistant')!;
    assert.equal(chat.name, 'chat');
    assert.equal(chat.routerId, 'chat');
    assert.equal(chat.memory!.ctxSize, 1024);
  });

  it('finds a model copied in after the last scan by rescanning and having the router re-read the folder once', async () => {
    assert.equal(catalog.find('late'), null);
    const reloadsBefore = router.reloads;
    await writeTinyLlama(join(dir, 'late.gguf'), 3);
    const late = await catalog.resolve('late');
    assert.equal(late?.name, 'late');
    assert.equal(router.reloads, reloadsBefore + 1);
    assert.equal(await catalog.resolve('never-there'), null);
  });

  it("serves a model of the router's preset file outside MODELS_DIR by its router id and aliases", async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'gg-catalog-elsewhere-'));
    try {
      await writeTinyLlama(join(elsewhere, 'base.gguf'), 5);
      router.models.push(
        routerModel('base', { source: 'preset', aliases: ['default'], modelPath: join(elsewhere, 'base.gguf') }),
        routerModel('remote-only', { source: 'preset', modelPath: '/nowhere/remote.gguf' }),
        routerModel('cached', { source: 'cache' }),
      );
      await catalog.refresh();
      const base = catalog.find('default')!;
      assert.equal(base.name, 'base');
      assert.equal(base.routerId, 'base');
      assert.deepEqual(base.paths, [join(elsewhere, 'base.gguf')]);
      assert.equal(base.failure, null);
      assert.ok(base.memory!.totalBytes > 0);
      // A file this process cannot see is still served; its size is not known.
      assert.equal(catalog.find('remote-only')!.failure, null);
      assert.equal(catalog.find('remote-only')!.memory, null);
      assert.equal(catalog.find('cached'), null);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  it("plans with the options the router gives the model's process (its preset)", () => {
    assert.deepEqual(
      presetOptions('[plain]\nctx-size = 4096\nparallel = 4\nn-gpu-layers = -1\nmodel = /m/plain.gguf\n'),
      {
        ctxSize: 4096,
        parallel: 4,
        gpuLayers: -1,
      },
    );
  });
});
