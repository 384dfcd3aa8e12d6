-- Read models built by the projector from the event stream. Every table here can be
-- dropped and rebuilt from the log (`projector rebuild`). Owned by the projector; the
-- query API only reads them.

-- Where each projection has got to: the position of the last event applied. Written
-- in the same transaction as the read-model change it covers.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    -- Bumped by every rebuild, so a client resuming with positions from before a rebuild can be
    -- told to resync (design.md decision 6: "the epoch changes when a projection is rebuilt").
    epoch      BIGINT NOT NULL DEFAULT 1,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Events that could not be applied, with the reason. The checkpoint moves past them
-- only through this table, so nothing is skipped silently.
CREATE TABLE IF NOT EXISTS dead_letters (
    projection TEXT        NOT NULL,
    position   BIGINT      NOT NULL,
    event_id   UUID        NOT NULL,
    event_type TEXT        NOT NULL,
    reason     TEXT        NOT NULL,
    payload    JSONB       NOT NULL,
    failed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, position)
);

CREATE TABLE IF NOT EXISTS rm_users (
    user_id       UUID PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS rm_rooms (
    room_id              UUID PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('group', 'direct')),
    -- '' for direct rooms.
    name                 TEXT NOT NULL,
    topic                TEXT NOT NULL DEFAULT '',
    visibility           TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    owner_id             UUID NULL,
    member_count         INT  NOT NULL DEFAULT 0,
    -- seq of the newest message (deleted or not); unread counts are relative to it.
    last_seq             BIGINT NOT NULL DEFAULT 0,
    last_message_id      UUID NULL,
    last_message_at      TIMESTAMPTZ NULL,
    -- The room stream's version and the log position of the last event applied.
    version              BIGINT NOT NULL DEFAULT 0,
    position             BIGINT NOT NULL DEFAULT 0,
    created_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_rooms_public_name ON rm_rooms (lower(name)) WHERE visibility = 'public' AND kind = 'group';

-- Membership, including people who were invited, left or were kicked (status).
CREATE TABLE IF NOT EXISTS rm_members (
    room_id     UUID   NOT NULL,
    user_id     UUID   NOT NULL,
    status      TEXT   NOT NULL CHECK (status IN ('joined', 'invited', 'left', 'kicked')),
    role        TEXT   NOT NULL CHECK (role IN ('member', 'admin', 'owner')),
    joined_at   TIMESTAMPTZ NULL,
    -- Read marker: seq of the last message read; never moves back.
    read_seq    BIGINT NOT NULL DEFAULT 0,
    -- Messages after read_seq not sent by this user and not deleted. Maintained for joined
    -- members only: 0 while invited, left or kicked; a (re)joiner starts at the room's last_seq.
    unread_count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX IF NOT EXISTS rm_members_by_user ON rm_members (user_id) WHERE status = 'joined';

CREATE TABLE IF NOT EXISTS rm_messages (
    room_id     UUID   NOT NULL,
    seq         BIGINT NOT NULL,
    message_id  UUID   NOT NULL UNIQUE,
    sender_id   UUID   NOT NULL,
    -- NULL once deleted (a tombstone keeps its place in the history).
    body        TEXT   NULL,
    reply_to    UUID   NULL,
    client_msg_id TEXT NULL,
    sent_at     TIMESTAMPTZ NOT NULL,
    edited_at   TIMESTAMPTZ NULL,
    edit_number INT    NOT NULL DEFAULT 0,
    deleted     BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at  TIMESTAMPTZ NULL,
    -- {"👍": ["<user uuid>", ...], ...}, users in the order they reacted.
    reactions   JSONB  NOT NULL DEFAULT '{}'::jsonb,
    -- Room stream version and log position of the last change to this message.
    version     BIGINT NOT NULL,
    position    BIGINT NOT NULL,
    PRIMARY KEY (room_id, seq)
);

CREATE TABLE IF NOT EXISTS rm_direct_pairs (
    user_lo UUID NOT NULL,
    user_hi UUID NOT NULL,
    room_id UUID NOT NULL UNIQUE,
    PRIMARY KEY (user_lo, user_hi),
    CHECK (user_lo < user_hi)
);
