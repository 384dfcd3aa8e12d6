-- What asks for a user's attention (issue #17): mentions, read receipts shown to others, and
-- notification levels. Read models like the others: dropped and rebuilt from the log.
--
-- Receipts of read markers moved before this migration appear after the next rebuild (the
-- markers in rm_members.read_seq cannot tell a marker from a join, which sets it too).

-- One row per member a message names (`MessageSent.mentions`); gone when the message is
-- deleted. The unread mention count of a member is the rows after their read marker.
CREATE TABLE IF NOT EXISTS rm_mentions (
    room_id    UUID        NOT NULL,
    seq        BIGINT      NOT NULL,
    user_id    UUID        NOT NULL,
    message_id UUID        NOT NULL,
    sender_id  UUID        NOT NULL,
    position   BIGINT      NOT NULL,
    sent_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, seq, user_id)
);
-- A user's recent mentions (GET /v1/mentions) and their count per room.
CREATE INDEX IF NOT EXISTS rm_mentions_by_user ON rm_mentions (user_id, position);
CREATE INDEX IF NOT EXISTS rm_mentions_by_user_room ON rm_mentions (user_id, room_id, seq);

-- Messages that mention the whole room (`@room` by an owner or admin): one row each, which
-- counts for every member who joined before it, other than its sender.
CREATE TABLE IF NOT EXISTS rm_room_mentions (
    room_id    UUID        NOT NULL,
    seq        BIGINT      NOT NULL,
    message_id UUID        NOT NULL,
    sender_id  UUID        NOT NULL,
    position   BIGINT      NOT NULL,
    sent_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, seq)
);

-- How far each member has read, as shown to the room: moved only by markers that were not
-- private. Shown only while the member is joined and does not keep receipts private now.
CREATE TABLE IF NOT EXISTS rm_receipts (
    room_id UUID   NOT NULL,
    user_id UUID   NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- A member's chosen notification level in a room; none chosen: the room kind's default
-- (all in a direct room, mentions in a group room). Forgotten when the member leaves.
CREATE TABLE IF NOT EXISTS rm_notification_levels (
    room_id UUID NOT NULL,
    user_id UUID NOT NULL,
    level   TEXT NOT NULL CHECK (level IN ('all', 'mentions', 'none')),
    PRIMARY KEY (room_id, user_id)
);

-- Users who keep their read receipts private (ReadReceiptsPrivacyChanged).
CREATE TABLE IF NOT EXISTS rm_private_receipts (
    user_id UUID PRIMARY KEY
);
