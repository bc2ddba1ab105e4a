-- Up Migration

-- One row per request, written by the metrics service from the usage stream (request_id makes it idempotent).
CREATE TABLE usage_events (
  request_id        text PRIMARY KEY,
  ts                timestamptz NOT NULL,
  key_id            text NOT NULL,
  model             text NOT NULL,
  backend           text NOT NULL,
  route             text NOT NULL,
  status            smallint NOT NULL,
  stream            boolean NOT NULL,
  prompt_tokens     integer NOT NULL DEFAULT 0,
  completion_tokens integer NOT NULL DEFAULT 0,
  cached_tokens     integer NOT NULL DEFAULT 0,
  ttft_ms           integer,
  duration_ms       integer NOT NULL,
  error_code        text,
  usage_source      text NOT NULL CHECK (usage_source IN ('upstream', 'estimated')),
  cost_usd          numeric(18, 8) NOT NULL DEFAULT 0
);
CREATE INDEX usage_events_ts_idx ON usage_events (ts);
CREATE INDEX usage_events_key_ts_idx ON usage_events (key_id, ts);
CREATE INDEX usage_events_model_ts_idx ON usage_events (model, ts);

-- Rollup per day, key and model; kept when raw events age out (USAGE_RETENTION_DAYS).
CREATE TABLE usage_daily (
  day               date NOT NULL,
  key_id            text NOT NULL,
  model             text NOT NULL,
  requests          bigint NOT NULL DEFAULT 0,
  errors            bigint NOT NULL DEFAULT 0,
  prompt_tokens     bigint NOT NULL DEFAULT 0,
  completion_tokens bigint NOT NULL DEFAULT 0,
  cost_usd          numeric(20, 8) NOT NULL DEFAULT 0,
  PRIMARY KEY (day, key_id, model)
);
CREATE INDEX usage_daily_key_idx ON usage_daily (key_id, day);

-- Models on disk, recorded by the worker after a verified pull.
CREATE TABLE models (
  name           text PRIMARY KEY,
  path           text NOT NULL,
  bytes          bigint NOT NULL,
  sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  source         jsonb NOT NULL,
  architecture   text,
  quantization   text,
  context_length integer,
  gguf_metadata  jsonb NOT NULL DEFAULT '{}'::jsonb,
  pulled_at      timestamptz NOT NULL DEFAULT now()
);

-- Every pull attempt, for history and the pulls dashboard.
CREATE TABLE pull_jobs (
  id          bigserial PRIMARY KEY,
  job_id      text NOT NULL,
  source      jsonb NOT NULL,
  model_name  text,
  state       text NOT NULL CHECK (state IN ('queued', 'active', 'completed', 'failed', 'cancelled')),
  bytes_total bigint,
  bytes_done  bigint NOT NULL DEFAULT 0,
  sha256      text,
  error       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  finished_at timestamptz
);
CREATE INDEX pull_jobs_job_id_idx ON pull_jobs (job_id);
CREATE INDEX pull_jobs_created_idx ON pull_jobs (created_at);

-- Down Migration
DROP TABLE pull_jobs;
DROP TABLE models;
DROP TABLE usage_daily;
DROP TABLE usage_events;
