-- Where the last rebuild of each projection is (or ended), written by the rebuild after every
-- committed batch, so that the running services can export it as metrics
-- (chat_projection_rebuild_*) while a separate `projector rebuild` / `chat rebuild` runs.
CREATE TABLE IF NOT EXISTS projection_rebuilds (
    projection        TEXT PRIMARY KEY,
    -- replay, indexing, switching, done (or failed).
    phase             TEXT NOT NULL,
    position          BIGINT NOT NULL,
    head              BIGINT NOT NULL,
    applied           BIGINT NOT NULL,
    events_per_second DOUBLE PRECISION NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
