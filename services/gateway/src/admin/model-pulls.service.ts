import {
  ApiError,
  FINISHED_PULL_STATES,
  InvalidPullError,
  PullCancellingError,
  badRequest,
  notFound,
  parsePullJobData,
  serviceUnavailable,
  type PullJob,
  type PullJobView,
  type PullQueue,
} from '@gguf-gateway/shared';
import type { LocalModel, LocalModelsRepository } from './local-models.repository.js';

/** Redis or Postgres away is a 503 the client may retry, not a 500. */
async function dependency<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw serviceUnavailable(`${what} is unavailable; try again shortly`, 5);
  }
}

/** Admin pulls: enqueue (deduped by source), inspect, cancel, and the list of local models. */
export class ModelPullsService {
  constructor(
    private readonly queue: PullQueue,
    private readonly models: LocalModelsRepository,
  ) {}

  async enqueue(body: unknown): Promise<{ view: PullJobView; deduplicated: boolean }> {
    let data;
    try {
      data = parsePullJobData(body);
    } catch (err) {
      if (err instanceof InvalidPullError) throw badRequest(err.message, err.param, 'invalid_pull');
      throw err;
    }
    return dependency('the job queue', async () => {
      try {
        const { job, deduplicated } = await this.queue.enqueue(data);
        return { view: await this.queue.view(job), deduplicated };
      } catch (err) {
        if (err instanceof PullCancellingError) throw new ApiError(409, err.message, { code: 'job_cancelling' });
        throw err;
      }
    });
  }

  async job(id: string): Promise<PullJobView> {
    return dependency('the job queue', async () => this.queue.view(await this.found(id)));
  }

  async cancel(id: string): Promise<PullJobView> {
    return dependency('the job queue', async () => {
      const job = await this.found(id);
      const view = await this.queue.view(job);
      if (FINISHED_PULL_STATES.includes(view.state)) {
        throw new ApiError(
          409,
          `Job ${id} has already ${view.state === 'cancelled' ? 'been cancelled' : view.state}.`,
          {
            code: 'job_finished',
          },
        );
      }
      await this.queue.requestCancel(job);
      return { ...view, cancelRequested: true };
    });
  }

  async listModels(): Promise<LocalModel[]> {
    return dependency('the models database', () => this.models.list());
  }

  private async found(id: string): Promise<PullJob> {
    const job = await this.queue.find(id);
    if (!job) throw notFound(`No pull job with id ${id}.`, 'job_not_found');
    return job;
  }
}
