import { watchFile, unwatchFile, type Stats } from 'node:fs';
import type { Logger } from '@gguf-gateway/shared';
import { readBackendsFile } from './backends-file.repository.js';
import type { ModelRouter } from './model-router.js';

// Reloads BACKENDS_FILE when it changes (polled: fs.watch misses the symlink swaps of mounted
// ConfigMaps and secrets) and on demand (SIGHUP). A file that does not load leaves the last good
// table serving and is reported in the log and on /readyz until a good one replaces it.

export class BackendsFileWatcher {
  /** Why the last reload failed; null after a good one. */
  problem: string | null = null;
  private reloading: Promise<void> = Promise.resolve();
  private readonly onChange = (current: Stats, previous: Stats) => {
    if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size) void this.reload();
  };

  constructor(
    private readonly path: string,
    private readonly router: ModelRouter,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    watchFile(this.path, { interval: this.pollMs, persistent: false }, this.onChange);
  }

  stop(): void {
    unwatchFile(this.path, this.onChange);
  }

  /** Reads the file and swaps the routing table; reloads run one after another. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      try {
        this.router.replace(await readBackendsFile(this.path));
        if (this.problem) this.logger.info('BACKENDS_FILE loads again');
        this.problem = null;
        this.logger.info({ models: this.router.models().map((m) => m.id) }, 'BACKENDS_FILE reloaded');
      } catch (err) {
        this.problem = `BACKENDS_FILE reload failed, serving the last good config: ${(err as Error).message}`;
        this.logger.error(this.problem);
      }
    });
    return this.reloading;
  }
}
