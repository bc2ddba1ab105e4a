import { appendFile, mkdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { namesIn, type UsageEvent } from '@gguf-gateway/shared';

// The local append-only file where usage events wait while Redis cannot take them: one JSON event
// per line. A replay first renames the file (new events go to a fresh one meanwhile), so a file
// being replayed is never appended to; it is deleted only once every event in it is on the stream.

const SPOOL_FILE = 'usage-events.spool.jsonl';
const REPLAY_SUFFIX = '.replay.jsonl';

export interface SpoolRead {
  events: UsageEvent[];
  /** Lines that are not an event (a line torn by a crash mid-append). */
  unreadable: number;
}

export class UsageSpoolRepository {
  private replays = 0;

  constructor(private readonly dir: string) {}

  /** Appends the events and waits for the data to reach the disk. */
  async append(events: UsageEvent[]): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const lines = events.map((event) => `${JSON.stringify(event)}\n`).join('');
    await appendFile(join(this.dir, SPOOL_FILE), lines, { flag: 'a', flush: true });
  }

  /**
   * Moves what is spooled now aside for a replay; returns every file waiting for one (older
   * replays that failed midway included), oldest first.
   */
  async takeForReplay(): Promise<string[]> {
    const names = await namesIn(this.dir);
    if (names.includes(SPOOL_FILE)) {
      const name = `${Date.now()}-${process.pid}-${++this.replays}${REPLAY_SUFFIX}`;
      await rename(join(this.dir, SPOOL_FILE), join(this.dir, name));
      names.push(name);
    }
    return names
      .filter((n) => n.endsWith(REPLAY_SUFFIX))
      .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10))
      .map((n) => join(this.dir, n));
  }

  async read(file: string): Promise<SpoolRead> {
    const events: UsageEvent[] = [];
    let unreadable = 0;
    for (const line of (await readFile(file, 'utf8')).split('\n')) {
      if (line === '') continue;
      try {
        events.push(JSON.parse(line) as UsageEvent);
      } catch {
        unreadable += 1;
      }
    }
    return { events, unreadable };
  }

  async remove(file: string): Promise<void> {
    await unlink(file);
  }
}
