import { redactedSource, type Pool, type PullSource } from '@gguf-gateway/shared';
import type { GgufInfo } from '@gguf-gateway/gguf';

export interface ModelRecord {
  name: string;
  path: string;
  bytes: number;
  sha256: string;
  source: PullSource;
  gguf: GgufInfo;
}

export type PullJobState = 'queued' | 'active' | 'completed' | 'failed' | 'cancelled';

export interface PullJobOutcome {
  state: PullJobState;
  bytesTotal?: number | null;
  bytesDone?: number;
  sha256?: string | null;
  error?: string | null;
}

/** GGUF metadata as JSON: bigints become numbers (or strings past 2^53). */
function jsonMetadata(gguf: GgufInfo): string {
  return JSON.stringify(gguf.metadata, (_key, value: unknown) =>
    typeof value === 'bigint' ? (value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()) : value,
  );
}

/** The `models` and `pull_jobs` tables: what is on disk, and every pull that put it there. */
export class ModelsRepository {
  constructor(private readonly pool: Pool) {}

  async saveModel(model: ModelRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO models (name, path, bytes, sha256, source, architecture, quantization, context_length, gguf_metadata, pulled_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
       ON CONFLICT (name) DO UPDATE SET path = $2, bytes = $3, sha256 = $4, source = $5, architecture = $6,
         quantization = $7, context_length = $8, gguf_metadata = $9, pulled_at = now()`,
      [
        model.name,
        model.path,
        model.bytes,
        model.sha256,
        JSON.stringify(redactedSource(model.source)),
        model.gguf.architecture,
        model.gguf.quantization,
        model.gguf.contextLength,
        jsonMetadata(model.gguf),
      ],
    );
  }

  /** The open history row of a job (a retry continues it), or a new one. Returns its id. */
  async startPull(jobId: string, source: PullSource, modelName: string): Promise<number> {
    const open = await this.pool.query<{ id: number }>(
      `UPDATE pull_jobs SET state = 'active', started_at = coalesce(started_at, now())
       WHERE id = (SELECT max(id) FROM pull_jobs WHERE job_id = $1 AND finished_at IS NULL) RETURNING id`,
      [jobId],
    );
    if (open.rows[0]) return open.rows[0].id;
    const inserted = await this.pool.query<{ id: number }>(
      `INSERT INTO pull_jobs (job_id, source, model_name, state, started_at) VALUES ($1, $2, $3, 'active', now()) RETURNING id`,
      [jobId, JSON.stringify(redactedSource(source)), modelName],
    );
    return inserted.rows[0]!.id;
  }

  async recordPull(id: number, outcome: PullJobOutcome): Promise<void> {
    const finished = outcome.state !== 'queued' && outcome.state !== 'active';
    await this.pool.query(
      `UPDATE pull_jobs SET state = $2, bytes_total = coalesce($3, bytes_total), bytes_done = coalesce($4, bytes_done),
         sha256 = coalesce($5, sha256), error = $6, finished_at = CASE WHEN $7 THEN now() ELSE NULL END
       WHERE id = $1`,
      [
        id,
        outcome.state,
        outcome.bytesTotal ?? null,
        outcome.bytesDone ?? null,
        outcome.sha256 ?? null,
        outcome.error ?? null,
        finished,
      ],
    );
  }

  /**
   * The open row of a job that BullMQ moved on without its processor: stalled (its worker died; the
   * job waits for another) or failed (stalled too often). Rows already finished are left as they are.
   */
  async followJob(jobId: string, state: 'queued' | 'failed', error: string): Promise<void> {
    await this.pool.query(
      `UPDATE pull_jobs SET state = $2, error = $3, finished_at = CASE WHEN $2 = 'failed' THEN now() ELSE NULL END
       WHERE job_id = $1 AND finished_at IS NULL`,
      [jobId, state, error],
    );
  }
}
