-- Up Migration

-- Usage events the metrics service could not store (not a usage event, or a value Postgres refuses,
-- such as a token count beyond integer range), set aside with the reason instead of being retried
-- forever: the rest of their batch is written and acknowledged. One row per stream entry.
CREATE TABLE usage_rejected_events (
  stream_entry_id text PRIMARY KEY,
  request_id      text,
  event           text,
  reason          text NOT NULL,
  rejected_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_rejected_events_rejected_at_idx ON usage_rejected_events (rejected_at);

-- Down Migration

DROP TABLE usage_rejected_events;
