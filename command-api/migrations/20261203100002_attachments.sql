-- Uploaded files (issue #17), beside the log like credentials: an upload is not an event
-- (the MessageSent that sends it carries its description; the bytes live in blob storage
-- under `attachments/<attachment_id>`). A row names who uploaded it to which room, so only
-- they can send it there. `claimed_at` moves whenever a send names it; an upload no message
-- sent is deleted, with its blobs, once `claimed_at` is older than APP_ATTACHMENT_TTL_SECS.
CREATE TABLE IF NOT EXISTS attachments (
    attachment_id UUID PRIMARY KEY,
    room_id       UUID NOT NULL,
    uploader_id   UUID NOT NULL,
    name          TEXT NOT NULL,
    size          BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    width         INT NULL,
    height        INT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent          BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS attachments_unsent ON attachments (claimed_at) WHERE NOT sent;
