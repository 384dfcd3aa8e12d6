-- The durable event log (design.md decisions 1-3, 8).

CREATE TABLE IF NOT EXISTS events (
    position        BIGINT      PRIMARY KEY CHECK (position >= 1),
    event_id        UUID        NOT NULL,
    stream_id       TEXT        NOT NULL,
    stream_type     TEXT        NOT NULL,
    version         BIGINT      NOT NULL CHECK (version >= 1),
    event_type      TEXT        NOT NULL,
    schema_version  INT         NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id        UUID        NULL,
    correlation_id  UUID        NOT NULL,
    causation_id    UUID        NULL,
    data            JSONB       NOT NULL,
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_id_version_key UNIQUE (stream_id, version)
);

-- One row: the position of the last committed event. Appends lock it (SELECT ... FOR UPDATE)
-- before assigning positions, so positions are gapless and commit-ordered.
CREATE TABLE IF NOT EXISTS log_head (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    position BIGINT  NOT NULL CHECK (position >= 0)
);
INSERT INTO log_head (id, position) VALUES (TRUE, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope       TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    status      INT         NOT NULL,
    response    JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
