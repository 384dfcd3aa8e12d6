-- Unread counts without a write per member per message.
--
-- Seqs are contiguous per room and a deleted message keeps its seq (a tombstone), so for a
-- joined member the messages after their read marker number rooms.last_seq - read_seq. Those
-- that do not count as unread for them (their own, and deleted ones) are kept in `skipped`:
-- a message adds to its sender's row only, a delete to the rows of members who had not read
-- it, and moving the marker recounts it. The unread count is then a subtraction
-- (the rm_unread view), and a message no longer updates every member's row.
ALTER TABLE rm_members ADD COLUMN skipped BIGINT NOT NULL DEFAULT 0;

UPDATE rm_members m
   SET skipped = r.last_seq - m.read_seq - m.unread_count
  FROM rm_rooms r
 WHERE r.room_id = m.room_id AND m.status = 'joined';

ALTER TABLE rm_members DROP COLUMN unread_count;

-- Unread messages per membership: only joined members have any.
CREATE VIEW rm_unread AS
SELECT m.room_id, m.user_id,
       CASE WHEN m.status = 'joined' THEN r.last_seq - m.read_seq - m.skipped ELSE 0 END
           AS unread_count
  FROM rm_members m
  JOIN rm_rooms r ON r.room_id = m.room_id;
