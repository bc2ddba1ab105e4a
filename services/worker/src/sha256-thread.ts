import { Worker } from 'node:worker_threads';

// Runs in the thread: hashes the chunks it is sent, or a part of a file it is told to read, in order, and
// answers every message once it is done with it (so the sender knows what is still in memory).
// After the first failure it hashes nothing more: a digest of incomplete data would be a lie.
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { createReadStream } = require('node:fs');
const hash = createHash('sha256');
let queue = Promise.resolve();
let failed = false;
parentPort.on('message', (message) => {
  queue = queue.then(async () => {
    if (failed) return;
    if (message.type === 'data') hash.update(message.data);
    if (message.type === 'file' && message.end > message.start) {
      const file = createReadStream(message.path, { start: message.start, end: message.end - 1, highWaterMark: 1 << 20 });
      let read = 0;
      for await (const chunk of file) {
        hash.update(chunk);
        read += chunk.length;
      }
      if (message.start + read !== message.end) throw new Error(message.path + ' has ' + (message.start + read) + ' bytes, not ' + message.end);
    }
    parentPort.postMessage({ type: 'done', digest: message.type === 'digest' ? hash.digest('hex') : undefined });
  }).catch((err) => {
    failed = true;
    parentPort.postMessage({ type: 'error', message: err.message });
  });
});
`;

const BATCH_BYTES = 1 << 20;
/** Bytes handed to the thread and not yet hashed, above which a caller should wait (`whenRoom`). */
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

interface Reply {
  bytes: number;
  answer: Promise<string | undefined>;
  resolve(digest: string | undefined): void;
  reject(err: Error): void;
}

/**
 * A sha256 computed on its own thread, so hashing a model overlaps with receiving and writing it
 * instead of taking turns with them on the event loop. The thread acknowledges each batch, so a
 * sender that waits for `whenRoom()` never holds more than a bounded amount of data in memory.
 */
export class Sha256Thread {
  private readonly thread = new Worker(THREAD_SOURCE, { eval: true });
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Answers the thread still owes, in the order it will give them. */
  private readonly replies: Reply[] = [];
  private inFlightBytes = 0;
  /** The first thing that went wrong: every later answer, the digest included, fails with it. */
  private failure: Error | null = null;
  private closed = false;

  constructor(private readonly maxInFlightBytes = MAX_IN_FLIGHT_BYTES) {
    this.thread.on('message', (message: { type: 'done' | 'error'; digest?: string; message?: string }) => {
      if (message.type === 'error') return this.fail(new Error(`sha256: ${message.message}`));
      const reply = this.replies.shift();
      if (!reply) return;
      this.inFlightBytes -= reply.bytes;
      reply.resolve(message.digest);
    });
    this.thread.on('error', (err) => this.fail(new Error(`sha256: ${err.message}`)));
    this.thread.on('exit', () => this.fail(new Error(this.closed ? 'sha256: closed' : 'sha256: the thread exited')));
  }

  /** Hashes the first `bytes` of a file (a whole model on disk). */
  async addFile(path: string, bytes: number): Promise<void> {
    this.flush();
    await this.post({ type: 'file', path, start: 0, end: bytes }, 0);
  }

  /**
   * The same without waiting: bytes [start, end) of a file come next in the hash, read by the thread
   * while the caller goes on. A read failure surfaces in digest().
   */
  queueFile(path: string, start: number, end: number): void {
    this.flush();
    this.post({ type: 'file', path, start, end }, 0).catch(() => undefined);
  }

  update(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= BATCH_BYTES) this.flush();
  }

  /** Resolves once less than the bound is waiting to be hashed; rejects if hashing failed. */
  async whenRoom(): Promise<void> {
    while (this.inFlightBytes + this.pendingBytes >= this.maxInFlightBytes) {
      this.flush();
      await this.replies[0]?.answer;
    }
    if (this.failure) throw this.failure;
  }

  get full(): boolean {
    return this.inFlightBytes + this.pendingBytes >= this.maxInFlightBytes;
  }

  async digest(): Promise<string> {
    try {
      this.flush();
      const digest = await this.post({ type: 'digest' }, 0);
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

  private post(message: object, bytes: number, transfer?: ArrayBuffer[]): Promise<string | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    let resolve!: Reply['resolve'];
    let reject!: Reply['reject'];
    const answer = new Promise<string | undefined>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A batch's answer is awaited by nobody when all goes well; its failure reaches digest() instead.
    answer.catch(() => undefined);
    this.replies.push({ bytes, answer, resolve, reject });
    this.inFlightBytes += bytes;
    this.thread.postMessage(message, transfer);
    return answer;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const reply of this.replies.splice(0)) reply.reject(this.failure);
    this.inFlightBytes = 0;
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    // A batch in memory of its own (never Node's shared pool) can move to the thread without a copy.
    const batch = Buffer.allocUnsafeSlow(this.pendingBytes);
    let at = 0;
    for (const chunk of this.pending) at += chunk.copy(batch, at);
    this.pending = [];
    this.pendingBytes = 0;
    // After a failure the batch is dropped: the failure is what digest() reports.
    this.post({ type: 'data', data: batch }, batch.length, [batch.buffer]).catch(() => undefined);
  }
}
