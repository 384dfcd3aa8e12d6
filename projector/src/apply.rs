//! The projection logic: one stored event → the read-model rows it changes.
//!
//! Not idempotent on purpose: exactly-once comes from the checkpoint, written in the same
//! transaction (see [`crate::read_models`]). Events must be applied strictly in position order.
//! Every handler is one SQL statement where it can be (data-modifying CTEs), so applying events
//! one by one costs about one round trip per event.
//!
//! This is the reference semantics of the read models and careful mode's path (a savepoint per
//! event, to isolate a poison event). Batches normally go through [`crate::batch`], which must
//! leave exactly the rows applying the batch's events here one by one would.

use eventlog::RecordedEvent;
use events::StoredEvent;
use events::ids::RoomId;
use events::room::RoomEvent;
use events::user::UserEvent;
use events::values::{Role, Visibility};
use sqlx::PgConnection;
use uuid::Uuid;

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event cannot be decoded or violates the model; it goes to `dead_letters`.
    #[error("poison event: {0}")]
    Poison(String),
    /// A database error. Data and integrity errors (SQLSTATE classes 22 and 23) are caused by the
    /// event itself and are treated as poison too (see [`ApplyError::is_poison`]); everything
    /// else is transient: roll back and retry.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl ApplyError {
    /// Whether retrying cannot help: the event itself is at fault.
    pub fn is_poison(&self) -> bool {
        match self {
            ApplyError::Poison(_) => true,
            ApplyError::Database(e) => e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23")),
        }
    }

    /// The reason recorded in `dead_letters`.
    pub fn reason(&self) -> String {
        match self {
            ApplyError::Poison(r) => r.clone(),
            ApplyError::Database(e) => format!("violates the read model: {e}"),
        }
    }
}

fn poison(msg: impl Into<String>) -> ApplyError {
    ApplyError::Poison(msg.into())
}

/// Applies one event to the read models. Events of stream types the read models do not cover
/// are ignored (the checkpoint still moves past them).
pub async fn apply_event(tx: &mut PgConnection, ev: &RecordedEvent) -> Result<(), ApplyError> {
    match ev.stream_type.as_str() {
        UserEvent::STREAM_TYPE => {
            let event = UserEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone())
                .map_err(|e| {
                    poison(format!(
                        "cannot decode {} (schema {}): {e}",
                        ev.event_type, ev.schema_version
                    ))
                })?;
            apply_user(tx, ev, event).await
        }
        RoomEvent::STREAM_TYPE => {
            let event = RoomEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone())
                .map_err(|e| {
                    poison(format!(
                        "cannot decode {} (schema {}): {e}",
                        ev.event_type, ev.schema_version
                    ))
                })?;
            let room_id = RoomId::from_stream_id(&ev.stream_id)
                .ok_or_else(|| poison(format!("not a room stream id: {}", ev.stream_id)))?
                .0;
            apply_room(tx, ev, room_id, event).await
        }
        _ => Ok(()),
    }
}

async fn apply_user(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    event: UserEvent,
) -> Result<(), ApplyError> {
    match event {
        UserEvent::UserRegistered {
            user_id,
            username,
            display_name,
        } => {
            sqlx::query(
                "INSERT INTO rm_users (user_id, username, display_name, registered_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(user_id.0)
            .bind(username.as_str())
            .bind(display_name.as_str())
            .bind(ev.occurred_at)
            .execute(tx)
            .await?;
        }
        UserEvent::ReadReceiptsPrivacyChanged { .. }
        | UserEvent::DisplayNameChanged { .. }
        | UserEvent::AvatarChanged { .. }
        | UserEvent::UserDeactivated { .. }
        | UserEvent::UserErased { .. } => {
            crate::attention::apply_user_event(tx, &event).await?;
            crate::moderation::apply_user_event(tx, ev.position, ev.occurred_at, &event).await?;
        }
    }
    Ok(())
}

pub(crate) fn visibility_str(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

pub(crate) fn role_str(r: Role) -> &'static str {
    match r {
        Role::Member => "member",
        Role::Admin => "admin",
        Role::Owner => "owner",
    }
}

fn room_missing(room_id: Uuid) -> ApplyError {
    poison(format!("room {room_id} is not in the read model"))
}

/// `UPDATE rm_rooms SET <set>, version = $2, position = $3 WHERE room_id = $1`; poison when the
/// room is missing.
async fn touch_room(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    room_id: Uuid,
) -> Result<(), ApplyError> {
    let done = sqlx::query("UPDATE rm_rooms SET version = $2, position = $3 WHERE room_id = $1")
        .bind(room_id)
        .bind(ev.version)
        .bind(ev.position)
        .execute(tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(room_missing(room_id));
    }
    Ok(())
}

async fn apply_room(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    room_id: Uuid,
    event: RoomEvent,
) -> Result<(), ApplyError> {
    use RoomEvent as E;
    let (version, position, at) = (ev.version, ev.position, ev.occurred_at);
    crate::attention::apply_room_event(tx, room_id, position, at, &event).await?;
    crate::moderation::apply_room_event(tx, room_id, position, at, &event).await?;
    match event {
        E::RoomCreated {
            name,
            topic,
            visibility,
            created_by,
            ..
        } => {
            sqlx::query(
                "INSERT INTO rm_rooms (room_id, kind, name, topic, visibility, owner_id, version, \
                 position, created_at) VALUES ($1, 'group', $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(room_id)
            .bind(name.as_str())
            .bind(topic.as_str())
            .bind(visibility_str(visibility))
            .bind(created_by.0)
            .bind(version)
            .bind(position)
            .bind(at)
            .execute(tx)
            .await?;
        }
        E::DirectRoomOpened { user_ids, .. } => {
            let (a, b) = (user_ids[0].0, user_ids[1].0);
            let (lo, hi) = if a < b { (a, b) } else { (b, a) };
            sqlx::query(
                "WITH room AS (INSERT INTO rm_rooms (room_id, kind, name, topic, visibility, \
                 owner_id, version, position, created_at) \
                 VALUES ($1, 'direct', '', '', 'private', NULL, $2, $3, $4) RETURNING room_id) \
                 INSERT INTO rm_direct_pairs (user_lo, user_hi, room_id) \
                 SELECT $5, $6, room_id FROM room",
            )
            .bind(room_id)
            .bind(version)
            .bind(position)
            .bind(at)
            .bind(lo)
            .bind(hi)
            .execute(tx)
            .await?;
        }
        E::RoomRenamed { name, .. } => {
            update_room_field(tx, ev, room_id, "name", name.as_str()).await?;
        }
        E::RoomTopicChanged { topic, .. } => {
            update_room_field(tx, ev, room_id, "topic", topic.as_str()).await?;
        }
        E::RoomVisibilityChanged { visibility, .. } => {
            update_room_field(tx, ev, room_id, "visibility", visibility_str(visibility)).await?;
        }
        E::MemberInvited { user_id, .. } => {
            touch_room(tx, ev, room_id).await?;
            sqlx::query(
                "INSERT INTO rm_members (room_id, user_id, status, role) \
                 VALUES ($1, $2, 'invited', 'member') \
                 ON CONFLICT (room_id, user_id) DO UPDATE \
                 SET status = 'invited', role = 'member', skipped = 0 \
                 WHERE rm_members.status <> 'joined'",
            )
            .bind(room_id)
            .bind(user_id.0)
            .execute(tx)
            .await?;
        }
        E::MemberJoined { user_id, role } => {
            // Every sub-statement sees the snapshot from before the statement, so the EXISTS
            // looks at the membership as it was.
            let done = sqlx::query(
                "WITH room AS (UPDATE rm_rooms SET member_count = member_count + CASE WHEN \
                 EXISTS (SELECT 1 FROM rm_members WHERE room_id = $1 AND user_id = $2 \
                 AND status = 'joined') THEN 0 ELSE 1 END, version = $4, position = $5 \
                 WHERE room_id = $1 RETURNING last_seq) \
                 INSERT INTO rm_members (room_id, user_id, status, role, joined_at, read_seq, \
                 skipped) SELECT $1, $2, 'joined', $3, $6, last_seq, 0 FROM room \
                 ON CONFLICT (room_id, user_id) DO UPDATE SET status = 'joined', \
                 role = EXCLUDED.role, joined_at = EXCLUDED.joined_at, \
                 read_seq = GREATEST(rm_members.read_seq, EXCLUDED.read_seq), skipped = 0",
            )
            .bind(room_id)
            .bind(user_id.0)
            .bind(role_str(role))
            .bind(version)
            .bind(position)
            .bind(at)
            .execute(tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(room_missing(room_id));
            }
        }
        E::MemberLeft { user_id } => {
            member_gone(tx, ev, room_id, user_id.0, Gone::Left).await?;
        }
        E::MemberKicked { user_id, .. } => {
            member_gone(tx, ev, room_id, user_id.0, Gone::Kicked).await?;
        }
        E::MemberBanned { user_id, .. } => {
            // A member, or an invitation, ends as with a kick; a ban of someone who is neither
            // leaves their old row (left, kicked) or its absence as it is.
            member_gone(tx, ev, room_id, user_id.0, Gone::Banned).await?;
        }
        // Only `rm_room_bans` (above) and the room's version change.
        E::MemberUnbanned { .. } => touch_room(tx, ev, room_id).await?,
        E::MemberRoleChanged { user_id, role, .. } => {
            touch_room(tx, ev, room_id).await?;
            let done =
                sqlx::query("UPDATE rm_members SET role = $3 WHERE room_id = $1 AND user_id = $2")
                    .bind(room_id)
                    .bind(user_id.0)
                    .bind(role_str(role))
                    .execute(tx)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(poison(format!(
                    "user {} is not a member of room {room_id}",
                    user_id.0
                )));
            }
        }
        sent @ E::MessageSent { .. } => {
            apply_message_run(tx, &[SentRow::new(ev, room_id, sent)?]).await?;
        }
        E::MessageEdited {
            message_id,
            seq,
            body,
            edit_number,
            ..
        } => {
            let changed: i64 = sqlx::query_scalar(
                "WITH msg AS (UPDATE rm_messages SET body = $4, edited_at = $5, \
                 edit_number = $6, version = $7, position = $8 \
                 WHERE room_id = $1 AND seq = $2 AND message_id = $3 AND NOT deleted \
                 RETURNING 1), \
                 room AS (UPDATE rm_rooms SET version = $7, position = $8 \
                 WHERE room_id = $1 AND EXISTS (SELECT 1 FROM msg)) \
                 SELECT count(*) FROM msg",
            )
            .bind(room_id)
            .bind(seq_i64(seq)?)
            .bind(message_id.0)
            .bind(body.as_str())
            .bind(at)
            .bind(i32::try_from(edit_number).map_err(|_| poison("edit number out of range"))?)
            .bind(version)
            .bind(position)
            .fetch_one(tx)
            .await?;
            if changed == 0 {
                return Err(message_missing(room_id, seq));
            }
        }
        E::MessageDeleted {
            message_id, seq, ..
        } => {
            let changed: i64 = sqlx::query_scalar(
                "WITH msg AS (UPDATE rm_messages SET deleted = TRUE, body = NULL, attachments = NULL, \
                 reactions = '{}'::jsonb, deleted_at = $4, version = $5, position = $6 \
                 WHERE room_id = $1 AND seq = $2 AND message_id = $3 AND NOT deleted \
                 RETURNING sender_id), \
                 room AS (UPDATE rm_rooms SET version = $5, position = $6 \
                 WHERE room_id = $1 AND EXISTS (SELECT 1 FROM msg)), \
                 skip AS (UPDATE rm_members SET skipped = skipped + 1 \
                 WHERE room_id = $1 AND status = 'joined' AND read_seq < $2 \
                 AND EXISTS (SELECT 1 FROM msg) \
                 AND user_id NOT IN (SELECT sender_id FROM msg)) \
                 SELECT count(*) FROM msg",
            )
            .bind(room_id)
            .bind(seq_i64(seq)?)
            .bind(message_id.0)
            .bind(at)
            .bind(version)
            .bind(position)
            .fetch_one(tx)
            .await?;
            if changed == 0 {
                return Err(message_missing(room_id, seq));
            }
        }
        E::ReactionAdded {
            message_id,
            seq,
            user_id,
            emoji,
        } => {
            // {emoji: [user ids in the order they reacted]}; a repeat changes nothing.
            reaction(
                tx,
                ev,
                room_id,
                message_id.0,
                seq,
                emoji.as_str(),
                user_id.0,
                "CASE WHEN COALESCE((reactions -> $4::text) ? $5::text, FALSE) THEN reactions \
                 ELSE jsonb_set(reactions, ARRAY[$4::text], \
                 COALESCE(reactions -> $4::text, '[]'::jsonb) || to_jsonb($5::text)) END",
            )
            .await?;
        }
        E::ReactionRemoved {
            message_id,
            seq,
            user_id,
            emoji,
        } => {
            // An emoji nobody uses any more disappears from the object.
            reaction(
                tx,
                ev,
                room_id,
                message_id.0,
                seq,
                emoji.as_str(),
                user_id.0,
                "CASE WHEN NOT (reactions ? $4::text) THEN reactions \
                 WHEN jsonb_array_length((reactions -> $4::text) - $5::text) = 0 \
                 THEN reactions - $4::text \
                 ELSE jsonb_set(reactions, ARRAY[$4::text], (reactions -> $4::text) - $5::text) END",
            )
            .await?;
        }
        E::NotificationLevelChanged { .. } => touch_room(tx, ev, room_id).await?,
        E::RoomRetentionChanged { days, .. } => {
            crate::retention::retention_changed(tx, ev, room_id, days).await?;
        }
        E::MessagesExpired { up_to_seq } => {
            crate::retention::messages_expired(tx, ev, room_id, up_to_seq).await?;
        }
        E::ReadMarkerMoved { user_id, seq, .. } => {
            // Never moves back; `skipped` is recounted from the messages after it (and the
            // expired seqs after it).
            let rooms: i64 = sqlx::query_scalar(concat!(
                "WITH room AS (UPDATE rm_rooms SET version = $4, position = $5 \
                 WHERE room_id = $1 RETURNING room_id), \
                 member AS (UPDATE rm_members SET read_seq = $3, skipped = CASE \
                 WHEN status = 'joined' THEN ",
                crate::retention::skipped_sql!("$1", "$2", "$3"),
                " ELSE 0 END \
                 WHERE room_id IN (SELECT room_id FROM room) AND user_id = $2 AND read_seq < $3) \
                 SELECT count(*) FROM room",
            ))
            .bind(room_id)
            .bind(user_id.0)
            .bind(seq_i64(seq)?)
            .bind(version)
            .bind(position)
            .fetch_one(tx)
            .await?;
            if rooms == 0 {
                return Err(room_missing(room_id));
            }
        }
    }
    Ok(())
}

fn seq_i64(seq: u64) -> Result<i64, ApplyError> {
    i64::try_from(seq).map_err(|_| poison(format!("seq {seq} out of range")))
}

fn message_missing(room_id: Uuid, seq: u64) -> ApplyError {
    poison(format!(
        "message {seq} of room {room_id} is not in the read model or is deleted"
    ))
}

async fn update_room_field(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    room_id: Uuid,
    column: &'static str,
    value: &str,
) -> Result<(), ApplyError> {
    // `column` is one of a fixed set of names chosen above, never input.
    let sql = format!(
        "UPDATE rm_rooms SET {column} = $4, version = $2, position = $3 WHERE room_id = $1"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(room_id)
        .bind(ev.version)
        .bind(ev.position)
        .bind(value)
        .execute(tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(room_missing(room_id));
    }
    Ok(())
}

/// How a membership ends.
#[derive(Clone, Copy)]
enum Gone {
    Left,
    Kicked,
    /// As a kick, for a member or an invitation; anyone else's row (left, kicked) stays.
    Banned,
}

/// Membership ends: the member count drops if they were joined; `skipped` is no longer
/// maintained (0).
async fn member_gone(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    room_id: Uuid,
    user_id: Uuid,
    how: Gone,
) -> Result<(), ApplyError> {
    let (status, only_present) = match how {
        Gone::Left => ("left", false),
        Gone::Kicked => ("kicked", false),
        Gone::Banned => ("kicked", true),
    };
    let done = sqlx::query(
        "WITH old AS (SELECT status FROM rm_members WHERE room_id = $1 AND user_id = $2), \
         member AS (UPDATE rm_members SET status = $3, skipped = 0 \
         WHERE room_id = $1 AND user_id = $2 \
         AND (NOT $6 OR status IN ('joined', 'invited'))) \
         UPDATE rm_rooms SET member_count = member_count - \
         (SELECT count(*) FROM old WHERE status = 'joined')::int, version = $4, position = $5 \
         WHERE room_id = $1",
    )
    .bind(room_id)
    .bind(user_id)
    .bind(status)
    .bind(ev.version)
    .bind(ev.position)
    .bind(only_present)
    .execute(tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(room_missing(room_id));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn reaction(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    room_id: Uuid,
    message_id: Uuid,
    seq: u64,
    emoji: &str,
    user_id: Uuid,
    new_reactions: &'static str,
) -> Result<(), ApplyError> {
    let sql = format!(
        "WITH msg AS (UPDATE rm_messages SET reactions = {new_reactions}, version = $6, \
         position = $7 WHERE room_id = $1 AND seq = $2 AND message_id = $3 AND NOT deleted \
         RETURNING 1), \
         room AS (UPDATE rm_rooms SET version = $6, position = $7 \
         WHERE room_id = $1 AND EXISTS (SELECT 1 FROM msg)) \
         SELECT count(*) FROM msg"
    );
    let changed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(room_id)
        .bind(seq_i64(seq)?)
        .bind(message_id)
        .bind(emoji)
        .bind(user_id.to_string())
        .bind(ev.version)
        .bind(ev.position)
        .fetch_one(tx)
        .await?;
    if changed == 0 {
        return Err(message_missing(room_id, seq));
    }
    Ok(())
}

/// A decoded `MessageSent`, ready for [`apply_message_run`].
#[derive(Clone, Debug)]
pub struct SentRow {
    pub room_id: Uuid,
    pub seq: i64,
    pub message_id: Uuid,
    pub sender_id: Uuid,
    pub body: String,
    pub reply_to: Option<Uuid>,
    pub client_msg_id: Option<String>,
    /// The attachments as the JSON of `rm_messages.attachments`; `None` without any.
    pub attachments: Option<String>,
    pub sent_at: chrono::DateTime<chrono::Utc>,
    pub version: i64,
    pub position: i64,
}

impl SentRow {
    /// The row of `event`, which must be the `MessageSent` recorded as `ev` in room `room_id`.
    fn new(ev: &RecordedEvent, room_id: Uuid, event: RoomEvent) -> Result<SentRow, ApplyError> {
        let RoomEvent::MessageSent {
            message_id,
            seq,
            sender_id,
            body,
            reply_to,
            client_msg_id,
            attachments,
            ..
        } = event
        else {
            return Err(poison(format!("{} is not a MessageSent", ev.event_type)));
        };
        Ok(SentRow {
            room_id,
            seq: seq_i64(seq)?,
            message_id: message_id.0,
            sender_id: sender_id.0,
            body: body.as_str().to_owned(),
            reply_to: reply_to.map(|r| r.0),
            client_msg_id,
            attachments: attachments_json(&attachments),
            sent_at: ev.occurred_at,
            version: ev.version,
            position: ev.position,
        })
    }
}

/// `rm_messages.attachments` of a message carrying these: `None` when there are none.
pub fn attachments_json(attachments: &[events::attachment::Attachment]) -> Option<String> {
    if attachments.is_empty() {
        return None;
    }
    serde_json::to_string(attachments).ok()
}

/// The event as a [`SentRow`] when it is a well-formed `MessageSent` of a room stream; `None`
/// for anything else (including undecodable events, which [`apply_event`] then dead-letters).
pub fn as_message_sent(ev: &RecordedEvent) -> Option<SentRow> {
    if ev.stream_type != RoomEvent::STREAM_TYPE || ev.event_type != "MessageSent" {
        return None;
    }
    let room_id = RoomId::from_stream_id(&ev.stream_id)?.0;
    let event = RoomEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone()).ok()?;
    SentRow::new(ev, room_id, event).ok()
}

/// Applies consecutive `MessageSent` events (in position order) in one statement, with the same
/// effect as applying them one by one: every message row is inserted, each room's last message,
/// version and position become those of its last message in the run, and each sender's own
/// messages are added to their `skipped` (their read marker is below every new seq: a marker
/// never passes the room's last message). Other members' unread counts follow from the room's
/// `last_seq` alone (the `rm_unread` view), so a message writes no row of theirs.
///
/// Messages commute with each other in these tables (none reads what another writes), which is
/// what makes the run one statement. A missing room is poison, as in [`apply_event`].
///
/// [`apply_event`] applies a `MessageSent` as a run of one. (Batches no longer use longer runs:
/// [`crate::batch`] inserts a batch's messages together with everything else. A run takes its
/// last message's seq as the room's `last_seq`, which equals applying them one by one only when
/// seqs grow within the run, as the domain makes them.)
pub async fn apply_message_run(tx: &mut PgConnection, run: &[SentRow]) -> Result<(), ApplyError> {
    if run.is_empty() {
        return Ok(());
    }
    let mut rooms: Vec<Uuid> = run.iter().map(|m| m.room_id).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let found: i64 = sqlx::query_scalar(
        "WITH input AS (SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::uuid[], \
           $5::text[], $6::uuid[], $7::text[], $8::timestamptz[], $9::int8[], $10::int8[], \
           $11::text[]) \
           AS t(room_id, seq, message_id, sender_id, body, reply_to, client_msg_id, sent_at, \
           version, position, attachments)), \
         last AS (SELECT DISTINCT ON (room_id) room_id, seq, message_id, sent_at, version, \
           position FROM input ORDER BY room_id, position DESC), \
         room AS (UPDATE rm_rooms r SET last_seq = GREATEST(r.last_seq, l.seq), \
           last_message_id = l.message_id, last_message_at = l.sent_at, version = l.version, \
           position = l.position FROM last l WHERE r.room_id = l.room_id RETURNING r.room_id), \
         msg AS (INSERT INTO rm_messages (room_id, seq, message_id, sender_id, body, reply_to, \
           client_msg_id, sent_at, version, position, attachments) \
           SELECT room_id, seq, message_id, sender_id, body, reply_to, client_msg_id, sent_at, \
           version, position, attachments::jsonb FROM input \
           WHERE room_id IN (SELECT room_id FROM room)), \
         own AS (UPDATE rm_members m SET skipped = m.skipped + c.n \
           FROM (SELECT room_id, sender_id, count(*) AS n FROM input GROUP BY 1, 2) c \
           WHERE m.room_id = c.room_id AND m.user_id = c.sender_id AND m.status = 'joined') \
         SELECT count(*) FROM room",
    )
    .bind(run.iter().map(|m| m.room_id).collect::<Vec<_>>())
    .bind(run.iter().map(|m| m.seq).collect::<Vec<_>>())
    .bind(run.iter().map(|m| m.message_id).collect::<Vec<_>>())
    .bind(run.iter().map(|m| m.sender_id).collect::<Vec<_>>())
    .bind(run.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
    .bind(run.iter().map(|m| m.reply_to).collect::<Vec<_>>())
    .bind(
        run.iter()
            .map(|m| m.client_msg_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(run.iter().map(|m| m.sent_at).collect::<Vec<_>>())
    .bind(run.iter().map(|m| m.version).collect::<Vec<_>>())
    .bind(run.iter().map(|m| m.position).collect::<Vec<_>>())
    .bind(
        run.iter()
            .map(|m| m.attachments.as_deref())
            .collect::<Vec<_>>(),
    )
    .fetch_one(tx)
    .await?;
    if usize::try_from(found).unwrap_or(0) != rooms.len() {
        return Err(poison("a message's room is not in the read model"));
    }
    Ok(())
}
