//! Message retention in the read models (issue #18, `events::retention`): a room's period, and
//! its expired messages removed. The reference semantics, as `crate::apply` is; the batch path
//! applies these events where they stand ([`crate::batch`]).

use eventlog::RecordedEvent;
use events::retention::RetentionDays;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::apply::ApplyError;

/// `RoomRetentionChanged`: the room's own period (`None`: the server's default).
pub(crate) async fn retention_changed(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    room_id: Uuid,
    days: Option<RetentionDays>,
) -> Result<(), ApplyError> {
    let done = sqlx::query(
        "UPDATE rm_rooms SET retention_days = $4, version = $2, position = $3 WHERE room_id = $1",
    )
    .bind(room_id)
    .bind(ev.version)
    .bind(ev.position)
    .bind(days.map(|d| i32::try_from(d.get()).unwrap_or(i32::MAX)))
    .execute(tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApplyError::Poison(format!(
            "room {room_id} is not in the read model"
        )));
    }
    Ok(())
}

/// `MessagesExpired`: every message of the room up to `up_to_seq` is deleted with its mentions.
/// Each joined member whose marker is below them counts the ones that counted as unread (not
/// their own, not deleted) into `skipped`, so their unread count drops by those; a later marker
/// recounts `skipped` with the expired seqs after it ([`skipped_sql`]). The room's newest
/// message is forgotten if it expired (its time stays: the room list's order).
pub(crate) async fn messages_expired(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    room_id: Uuid,
    up_to_seq: u64,
) -> Result<(), ApplyError> {
    let up_to = i64::try_from(up_to_seq)
        .map_err(|_| ApplyError::Poison(format!("seq {up_to_seq} out of range")))?;
    let rooms: i64 = sqlx::query_scalar(
        "WITH room AS (UPDATE rm_rooms SET expired_up_to = GREATEST(expired_up_to, $2), \
         last_message_id = CASE WHEN last_seq <= $2 THEN NULL ELSE last_message_id END, \
         version = $3, position = $4 WHERE room_id = $1 RETURNING room_id), \
         gone AS (DELETE FROM rm_messages m WHERE m.room_id IN (SELECT room_id FROM room) \
         AND m.seq <= $2 RETURNING m.seq, m.sender_id, m.deleted), \
         skip AS (UPDATE rm_members b SET skipped = b.skipped + c.n \
         FROM (SELECT j.user_id, count(*) AS n FROM rm_members j JOIN gone g \
         ON g.seq > j.read_seq AND NOT g.deleted AND g.sender_id <> j.user_id \
         WHERE j.room_id = $1 AND j.status = 'joined' GROUP BY 1) c \
         WHERE b.room_id = $1 AND b.user_id = c.user_id), \
         mentions AS (DELETE FROM rm_mentions WHERE room_id = $1 AND seq <= $2 \
         AND EXISTS (SELECT 1 FROM room)), \
         room_mentions AS (DELETE FROM rm_room_mentions WHERE room_id = $1 AND seq <= $2 \
         AND EXISTS (SELECT 1 FROM room)) \
         SELECT count(*) FROM room",
    )
    .bind(room_id)
    .bind(up_to)
    .bind(ev.version)
    .bind(ev.position)
    .fetch_one(tx)
    .await?;
    if rooms == 0 {
        return Err(ApplyError::Poison(format!(
            "room {room_id} is not in the read model"
        )));
    }
    Ok(())
}

/// The `skipped` of a joined member whose marker is at `$seq` in room `$room` (SQL
/// expressions, as literals): the messages after it that do not count as unread (their own,
/// deleted) plus the expired seqs after it. A literal, so the statements stay `'static`.
macro_rules! skipped_sql {
    ($room:literal, $user:literal, $seq:literal) => {
        concat!(
            "((SELECT count(*) FROM rm_messages x WHERE x.room_id = ",
            $room,
            " AND x.seq > ",
            $seq,
            " AND (x.sender_id = ",
            $user,
            " OR x.deleted)) \
             + (SELECT GREATEST(0, r.expired_up_to - ",
            $seq,
            ") FROM rm_rooms r \
             WHERE r.room_id = ",
            $room,
            "))"
        )
    };
}
pub(crate) use skipped_sql;
