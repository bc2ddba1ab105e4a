import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type PullResultLabel = 'completed' | 'failed' | 'cancelled';

/** The worker's metrics, named as the dashboards expect (DESIGN: model_pull_*). */
export class PullMetrics {
  readonly jobs: Counter<'result'>;
  readonly bytes: Counter;
  readonly active: Gauge;
  readonly duration: Histogram;

  constructor(registry: Registry) {
    this.jobs = new Counter({
      name: 'model_pull_jobs_total',
      help: 'Model pulls that ended, by result',
      labelNames: ['result'],
      registers: [registry],
    });
    for (const result of ['completed', 'failed', 'cancelled'] satisfies PullResultLabel[]) this.jobs.inc({ result }, 0);
    this.bytes = new Counter({
      name: 'model_pull_bytes_total',
      help: 'Bytes downloaded by model pulls',
      registers: [registry],
    });
    this.active = new Gauge({ name: 'model_pull_active', help: 'Model pulls running now', registers: [registry] });
    this.duration = new Histogram({
      name: 'model_pull_duration_seconds',
      help: 'Wall time of completed model pulls',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600, 7200],
      registers: [registry],
    });
  }
}
