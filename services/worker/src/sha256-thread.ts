import { Worker } from 'node:worker_threads';

// Runs in the thread: hashes the chunks it is sent, or a file it is told to read, in order.
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { createReadStream } = require('node:fs');
const hash = createHash('sha256');
let queue = Promise.resolve();
parentPort.on('message', (message) => {
  queue = queue.then(async () => {
    if (message.type === 'data') hash.update(message.data);
    if (message.type === 'file' && message.bytes > 0) {
      const file = createReadStream(message.path, { end: message.bytes - 1, highWaterMark: 1 << 20 });
      for await (const chunk of file) hash.update(chunk);
    }
    if (message.type === 'digest') parentPort.postMessage({ digest: hash.digest('hex') });
  }).catch((err) => parentPort.postMessage({ error: err.message }));
});
`;

const BATCH_BYTES = 1 << 20;

/**
 * A sha256 computed on its own thread, so hashing a model overlaps with receiving and writing it
 * instead of taking turns with them on the event loop.
 */
export class Sha256Thread {
  private readonly thread = new Worker(THREAD_SOURCE, { eval: true });
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** Hashes the first `bytes` of a file (the part of a download already on disk, or a whole model). */
  addFile(path: string, bytes: number): void {
    this.flush();
    this.thread.postMessage({ type: 'file', path, bytes });
  }

  update(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= BATCH_BYTES) this.flush();
  }

  async digest(): Promise<string> {
    this.flush();
    try {
      const answer = new Promise<{ digest?: string; error?: string }>((resolve, reject) => {
        this.thread.once('message', resolve);
        this.thread.once('error', reject);
      });
      this.thread.postMessage({ type: 'digest' });
      const { digest, error } = await answer;
      if (error !== undefined || digest === undefined) throw new Error(`sha256: ${error ?? 'no digest'}`);
      return digest;
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    await this.thread.terminate();
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    // A batch in memory of its own (never Node's shared pool) can move to the thread without a copy.
    const batch = Buffer.allocUnsafeSlow(this.pendingBytes);
    let at = 0;
    for (const chunk of this.pending) at += chunk.copy(batch, at);
    this.pending = [];
    this.pendingBytes = 0;
    this.thread.postMessage({ type: 'data', data: batch }, [batch.buffer]);
  }
}
