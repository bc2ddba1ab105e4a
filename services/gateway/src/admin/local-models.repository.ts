import type { Pool, PullSource } from '@gguf-gateway/shared';

export interface LocalModel {
  name: string;
  path: string;
  bytes: number;
  sha256: string;
  source: PullSource;
  architecture: string | null;
  quantization: string | null;
  contextLength: number | null;
  pulledAt: string;
}

interface ModelRow {
  name: string;
  path: string;
  bytes: number;
  sha256: string;
  source: PullSource;
  architecture: string | null;
  quantization: string | null;
  context_length: number | null;
  pulled_at: Date;
}

/** The models the worker has pulled and verified (the `models` table). */
export class LocalModelsRepository {
  constructor(private readonly pool: Pool) {}

  async list(): Promise<LocalModel[]> {
    const { rows } = await this.pool.query<ModelRow>(
      `SELECT name, path, bytes, sha256, source, architecture, quantization, context_length, pulled_at
       FROM models ORDER BY name`,
    );
    return rows.map((row) => ({
      name: row.name,
      path: row.path,
      bytes: row.bytes,
      sha256: row.sha256,
      source: row.source,
      architecture: row.architecture,
      quantization: row.quantization,
      contextLength: row.context_length,
      pulledAt: row.pulled_at.toISOString(),
    }));
  }

  /** Forgets the models whose file was deleted (DELETE /admin/v1/models/:name). */
  async removeByPath(paths: readonly string[]): Promise<void> {
    await this.pool.query('DELETE FROM models WHERE path = ANY($1::text[])', [paths]);
  }
}
