-- Message retention (issue #18): a room's own period (NULL: the server's default) and how far
-- its messages have expired. Expired messages are gone from rm_messages, rm_mentions and
-- rm_room_mentions; members' `skipped` counts them as it counts deleted ones, so unread counts
-- stay `last_seq - read_seq - skipped`.
ALTER TABLE rm_rooms ADD COLUMN IF NOT EXISTS retention_days INT NULL;
ALTER TABLE rm_rooms ADD COLUMN IF NOT EXISTS expired_up_to BIGINT NOT NULL DEFAULT 0;
