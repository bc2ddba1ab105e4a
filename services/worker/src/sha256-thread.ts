import { Worker } from 'node:worker_threads';

// Runs in the thread: hashes the parts of files it is told to, in order, reading each into one buffer
// it keeps (no garbage per MiB), and answers every message once it is done with it. After the first
// failure it hashes nothing more: a digest of incomplete data would be a lie.
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const hash = createHash('sha256');
const buffer = Buffer.allocUnsafe(4 << 20);
let failed = false;
function hashPart({ path, start, end }) {
  const fd = openSync(path, 'r');
  try {
    for (let at = start; at < end; ) {
      const read = readSync(fd, buffer, 0, Math.min(buffer.length, end - at), at);
      if (read === 0) throw new Error(path + ' has ' + at + ' bytes, not ' + end);
      hash.update(buffer.subarray(0, read));
      at += read;
    }
  } finally {
    closeSync(fd);
  }
}
parentPort.on('message', (message) => {
  if (failed) return;
  try {
    if (message.type === 'file') hashPart(message);
    parentPort.postMessage({ type: 'done', digest: message.type === 'digest' ? hash.digest('hex') : undefined });
  } catch (err) {
    failed = true;
    parentPort.postMessage({ type: 'error', message: err.message });
  }
});
`;

interface Reply {
  resolve(digest: string | undefined): void;
  reject(err: Error): void;
}

/**
 * A sha256 computed on its own thread from what is on disk, so hashing a model overlaps with
 * receiving and writing it instead of taking turns with them on the event loop. The bytes are read
 * back just after they were written, from the page cache: the thread costs the event loop no copy,
 * and what waits to be hashed is a list of file ranges, not data held in memory.
 */
export class Sha256Thread {
  private readonly thread = new Worker(THREAD_SOURCE, { eval: true });
  /** Answers the thread still owes, in the order it will give them. */
  private readonly replies: Reply[] = [];
  /** The first thing that went wrong: every later answer, the digest included, fails with it. */
  private failure: Error | null = null;
  private closed = false;

  constructor() {
    this.thread.on('message', (message: { type: 'done' | 'error'; digest?: string; message?: string }) => {
      if (message.type === 'error') return this.fail(new Error(`sha256: ${message.message}`));
      this.replies.shift()?.resolve(message.digest);
    });
    this.thread.on('error', (err) => this.fail(new Error(`sha256: ${err.message}`)));
    this.thread.on('exit', () => this.fail(new Error(this.closed ? 'sha256: closed' : 'sha256: the thread exited')));
  }

  /** Hashes the first `bytes` of a file (a whole model on disk). */
  async addFile(path: string, bytes: number): Promise<void> {
    await this.post({ type: 'file', path, start: 0, end: bytes });
  }

  /**
   * The same without waiting: bytes [start, end) of a file come next in the hash, read by the thread
   * while the caller goes on. A read failure surfaces in digest().
   */
  queueFile(path: string, start: number, end: number): void {
    if (end > start) this.post({ type: 'file', path, start, end }).catch(() => undefined);
  }

  async digest(): Promise<string> {
    try {
      const digest = await this.post({ type: 'digest' });
      if (digest === undefined) throw new Error('sha256: no digest');
      return digest;
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.thread.terminate();
  }

  private post(message: object): Promise<string | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.replies.push({ resolve, reject });
      this.thread.postMessage(message);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const reply of this.replies.splice(0)) reply.reject(this.failure);
  }
}
