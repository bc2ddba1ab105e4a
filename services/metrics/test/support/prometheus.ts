import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startProcess, stopProcess, waitFor, type ManagedProcess } from '@gguf-gateway/testkit';

export interface ScrapeTarget {
  job: string;
  /** host:port on 127.0.0.1 */
  address: string;
}

export interface PromSeries {
  metric: Record<string, string>;
  value: [number, string];
}

/** A real Prometheus (Debian package `prometheus`) scraping the given targets every second. */
export class TestPrometheus {
  private constructor(
    private readonly proc: ManagedProcess,
    private readonly dir: string,
    readonly url: string,
  ) {}

  static async start(targets: ScrapeTarget[]): Promise<TestPrometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'gg-prometheus-'));
    const config = {
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      scrape_configs: targets.map((t) => ({ job_name: t.job, static_configs: [{ targets: [t.address] }] })),
    };
    writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config));
    const port = await freePort();
    const proc = startProcess('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ]);
    const prometheus = new TestPrometheus(proc, dir, `http://127.0.0.1:${port}`);
    await waitFor('prometheus ready', async () => {
      if (proc.child.exitCode !== null) throw new Error(`prometheus exited:\n${proc.output()}`);
      return (await fetch(`${prometheus.url}/-/ready`)).ok;
    });
    return prometheus;
  }

  async query(expr: string): Promise<PromSeries[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data: { result: PromSeries[] } };
    if (body.status !== 'success') throw new Error(`prometheus rejected ${expr}: ${body.error}`);
    return body.data.result;
  }

  /**
   * Waits until every one of `targets` has been scraped successfully by a scrape that began after
   * `since`, so that what the processes did before then is in Prometheus.
   */
  async waitForScrapesAfter(targets: number, since: Date): Promise<void> {
    const after = since.getTime() / 1000;
    await waitFor(
      `${targets} targets scraped after ${since.toISOString()}`,
      async () => (await this.query(`(timestamp(up) > ${after}) and (up == 1)`)).length === targets,
      30_000,
      250,
    );
  }

  async stop(): Promise<void> {
    await stopProcess(this.proc);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
