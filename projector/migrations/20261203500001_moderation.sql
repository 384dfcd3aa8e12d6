-- Moderation read models (issue #18): who is banned from which room, and the audit trail of
-- what server administrators did. Like every read model, dropped and rebuilt from the log.

-- A ban in force (MemberBanned, until MemberUnbanned): the user cannot join or be invited.
CREATE TABLE IF NOT EXISTS rm_room_bans (
    room_id   UUID        NOT NULL,
    user_id   UUID        NOT NULL,
    banned_by UUID        NOT NULL,
    banned_at TIMESTAMPTZ NOT NULL,
    -- The log position of the MemberBanned.
    position  BIGINT      NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- One row per event done with a server administrator's authority: UserDeactivated and
-- UserErased of someone else, and the
-- room events marked `as_admin` (a role change, a deleted message, a ban or its lifting).
-- GET /v1/admin/audit pages it newest first by position.
CREATE TABLE IF NOT EXISTS rm_audit (
    position    BIGINT      PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    -- The event's stored type in snake case, as the live feed names it: user_deactivated,
    -- member_role_changed, message_deleted, member_banned, member_unbanned.
    event_type  TEXT        NOT NULL,
    actor_id    UUID        NOT NULL,
    -- What it was done to, where that applies.
    user_id     UUID        NULL,
    room_id     UUID        NULL,
    message_id  UUID        NULL,
    -- The role given, for a role change.
    role        TEXT        NULL
);
