//! The fast path of the read models: a whole batch of events applied with a handful of
//! set-based statements, with the same result, row for row, as applying the events one by one
//! with [`crate::apply::apply_event`] (the reference, used by careful mode).
//!
//! # How
//!
//! The batch is cut into **segments** (usually the whole batch is one). Each segment is applied
//! in four steps:
//!
//! 1. **Load** the rows the events read: the membership rows and rooms touched by membership
//!    events, and the messages touched by edits, deletes and reactions.
//! 2. **Fold** the events in position order in memory, exactly as `apply_event` would, into
//!    final per-key state: each touched membership row (its own messages counted into
//!    `skipped` while joined), each touched message (final body, reactions in the batch's
//!    order, deletion), each room (last event's version and position, member count delta,
//!    newest message, last name/topic/visibility), each read marker's furthest seq. Anything
//!    `apply_event` would refuse (a missing room or message, a role change of a non-member, an
//!    edit of a deleted message, a room created after events of its own) is reported as poison
//!    here, and the caller redoes the batch carefully.
//! 3. **Write** the final state: new users, rooms and direct pairs; membership rows; new
//!    messages (already in their final state, e.g. edited) with their senders' `skipped`;
//!    older messages that changed; then the `skipped` increments of deletes; then read markers
//!    (which recount `skipped` from the messages, as `apply_event` does) and every touched room,
//!    checking that each exists.
//!
//! # Why the order of the writes is sound
//!
//! The writes apply the segment's events grouped by kind (memberships, messages, message
//! changes, deletes' counts, markers), not in log order. That is equivalent because every pair
//! of events that the grouping reorders commutes (each reads nothing the other writes, or
//! their effects are additions): message changes and deletes commute with memberships and new
//! messages; deletes commute with later read markers (the recount sees the tombstone). Where
//! the order does matter, the fold keeps it: a join reads the room's `last_seq` as the
//! segment's earlier messages left it, a joined sender's own messages count into `skipped`
//! between membership changes. Two orders are not folded and start a new segment instead: a
//! **join or invitation after a read marker** of the same member (the join's `read_seq` and the
//! marker's recount interact; a marker of someone without a row changes nothing one by one,
//! but would find the row the invitation creates), and a **message at or below a read marker its sender moved in the
//! segment** (the recount would count it; only raw, out-of-order logs have these). An
//! **erasure** (`UserErased`), a **retention change** and an **expiry** (`MessagesExpired`) end
//! the batch where they stand: what came before is written, the event applied by
//! [`crate::apply::apply_event`], and the rest folded afresh, as if they were two batches.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use eventlog::RecordedEvent;
use events::StoredEvent;
use events::ids::RoomId;
use events::room::RoomEvent;
use events::user::UserEvent;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::apply::{ApplyError, role_str, visibility_str};
use crate::attention::Attention;
use crate::moderation::Moderation;

fn poison(msg: impl Into<String>) -> ApplyError {
    ApplyError::Poison(msg.into())
}

/// A decoded event of the batch.
enum Op {
    /// A user event only [`Attention`] and [`Moderation`] read.
    UserSetting {
        event: UserEvent,
        position: i64,
        at: DateTime<Utc>,
    },
    User {
        user_id: Uuid,
        username: String,
        display_name: String,
        at: DateTime<Utc>,
    },
    Room {
        room_id: Uuid,
        version: i64,
        position: i64,
        at: DateTime<Utc>,
        event: RoomEvent,
    },
}

/// Decodes `ev`; `None` for streams the read models ignore. Anything `apply_event` could not
/// decode is poison.
fn decode(ev: &RecordedEvent) -> Result<Option<Op>, ApplyError> {
    let undecodable = |e: &dyn std::fmt::Display| {
        poison(format!(
            "cannot decode {} (schema {}): {e}",
            ev.event_type, ev.schema_version
        ))
    };
    match ev.stream_type.as_str() {
        UserEvent::STREAM_TYPE => {
            match UserEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone())
                .map_err(|e| undecodable(&e))?
            {
                UserEvent::UserRegistered {
                    user_id,
                    username,
                    display_name,
                } => Ok(Some(Op::User {
                    user_id: user_id.0,
                    username: username.as_str().to_owned(),
                    display_name: display_name.as_str().to_owned(),
                    at: ev.occurred_at,
                })),
                event @ (UserEvent::ReadReceiptsPrivacyChanged { .. }
                | UserEvent::DisplayNameChanged { .. }
                | UserEvent::AvatarChanged { .. }
                | UserEvent::UserDeactivated { .. }
                | UserEvent::UserErased { .. }) => Ok(Some(Op::UserSetting {
                    event,
                    position: ev.position,
                    at: ev.occurred_at,
                })),
            }
        }
        RoomEvent::STREAM_TYPE => {
            let event = RoomEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone())
                .map_err(|e| undecodable(&e))?;
            let room_id = RoomId::from_stream_id(&ev.stream_id)
                .ok_or_else(|| poison(format!("not a room stream id: {}", ev.stream_id)))?
                .0;
            Ok(Some(Op::Room {
                room_id,
                version: ev.version,
                position: ev.position,
                at: ev.occurred_at,
                event,
            }))
        }
        _ => Ok(None),
    }
}

fn seq_i64(seq: u64) -> Result<i64, ApplyError> {
    i64::try_from(seq).map_err(|_| poison(format!("seq {seq} out of range")))
}

/// Applies `events` (contiguous, in position order, none at or below the checkpoint) except
/// the `dead_lettered` positions, with the same effect on the read models as applying them one
/// by one with [`crate::apply::apply_event`]. Any event `apply_event` would refuse makes the
/// whole call fail with a poison error (and the transaction must then be rolled back): the
/// caller redoes the batch event by event to find it.
pub async fn apply_events(
    tx: &mut PgConnection,
    events: &[RecordedEvent],
    dead_lettered: &[i64],
) -> Result<(), ApplyError> {
    let mut segment = Segment::default();
    let mut attention = Attention::default();
    let mut moderation = Moderation::default();
    for ev in events {
        if dead_lettered.contains(&ev.position) {
            continue;
        }
        let Some(op) = decode(ev)? else { continue };
        match &op {
            Op::UserSetting {
                event: event @ UserEvent::UserErased { .. },
                position,
                at,
            } => {
                moderation.user_event(*position, *at, event);
                // Applied where it stands in the log: what came before is written first, as
                // if the batch ended here (an erasure rewrites rows the fold may hold).
                apply_segment(tx, &segment.ops).await?;
                segment = Segment::default();
                std::mem::take(&mut attention).write(tx).await?;
                crate::attention::apply_user_event(tx, event).await?;
                continue;
            }
            Op::UserSetting {
                event,
                position,
                at,
            } => {
                attention.user_event(event);
                moderation.user_event(*position, *at, event);
                continue;
            }
            Op::Room {
                event: RoomEvent::RoomRetentionChanged { .. } | RoomEvent::MessagesExpired { .. },
                ..
            } => {
                // Applied where it stands, as an erasure is: an expiry deletes rows the fold
                // (and `Attention`'s mentions) may hold. Both are rare.
                apply_segment(tx, &segment.ops).await?;
                segment = Segment::default();
                std::mem::take(&mut attention).write(tx).await?;
                crate::apply::apply_event(tx, ev).await?;
                continue;
            }
            Op::Room {
                room_id,
                position,
                at,
                event,
                ..
            } => {
                attention.room_event(*room_id, *position, *at, event)?;
                moderation.room_event(*room_id, *position, *at, event);
            }
            Op::User { .. } => {}
        }
        if segment.conflicts_with(&op)? {
            apply_segment(tx, &segment.ops).await?;
            segment = Segment::default();
        }
        segment.push(op)?;
    }
    apply_segment(tx, &segment.ops).await?;
    attention.write(tx).await?;
    moderation.write(tx).await
}

/// Events that can be applied grouped by kind (see the module docs), and what is needed to
/// tell whether the next event still can.
#[derive(Default)]
struct Segment {
    ops: Vec<Op>,
    /// The furthest read marker of each (room, user) in the segment.
    markers: HashMap<(Uuid, Uuid), i64>,
}

impl Segment {
    /// Whether `op` must start a new segment: a join or an invitation after a read marker of the
    /// same member, or a message at or below a marker its sender moved in this segment.
    fn conflicts_with(&self, op: &Op) -> Result<bool, ApplyError> {
        let Op::Room { room_id, event, .. } = op else {
            return Ok(false);
        };
        Ok(match event {
            // An invitation may create the row the marker, one by one, did not find.
            RoomEvent::MemberJoined { user_id, .. } | RoomEvent::MemberInvited { user_id, .. } => {
                self.markers.contains_key(&(*room_id, user_id.0))
            }
            RoomEvent::MessageSent { seq, sender_id, .. } => {
                let seq = seq_i64(*seq)?;
                self.markers
                    .get(&(*room_id, sender_id.0))
                    .is_some_and(|&m| seq <= m)
            }
            _ => false,
        })
    }

    fn push(&mut self, op: Op) -> Result<(), ApplyError> {
        if let Op::Room {
            room_id,
            event: RoomEvent::ReadMarkerMoved { user_id, seq, .. },
            ..
        } = &op
        {
            let seq = seq_i64(*seq)?;
            let m = self.markers.entry((*room_id, user_id.0)).or_insert(seq);
            *m = (*m).max(seq);
        }
        self.ops.push(op);
        Ok(())
    }
}

/// A membership row (`rm_members`) as the fold keeps it.
#[derive(Clone, Debug)]
struct MemberRow {
    status: &'static str,
    role: String,
    joined_at: Option<DateTime<Utc>>,
    read_seq: i64,
    skipped: i64,
}

/// A touched membership: its row (`None` while there is none) and whether the fold changed it.
struct Member {
    row: Option<MemberRow>,
    changed: bool,
}

/// A message (`rm_messages`) as the fold keeps it: the columns its changes write.
struct Message {
    room_id: Uuid,
    seq: i64,
    message_id: Uuid,
    sender_id: Uuid,
    body: Option<String>,
    edited_at: Option<DateTime<Utc>>,
    edit_number: i32,
    deleted: bool,
    deleted_at: Option<DateTime<Utc>>,
    /// Always an object: `{emoji: [user ids in the order they reacted]}`.
    reactions: Value,
    version: i64,
    position: i64,
    /// `Some` for a message sent in this segment (inserted), `None` for an older one (updated).
    new: Option<NewMessage>,
    changed: bool,
}

/// What only a new message's insert writes.
struct NewMessage {
    reply_to: Option<Uuid>,
    client_msg_id: Option<String>,
    /// `rm_messages.attachments` (NULL, whatever this says, when deleted in the segment).
    attachments: Option<String>,
    sent_at: DateTime<Utc>,
    /// Whether the insert adds it to its sender's `skipped` (if joined): false when the fold
    /// already did, because the sender's membership changes in the segment.
    count_own: bool,
}

/// What the segment does to one room (`rm_rooms`).
struct RoomChange {
    /// Created by this segment (it exists from here on, with `last_seq` 0).
    created: bool,
    version: i64,
    position: i64,
    member_delta: i32,
    /// The highest seq of the segment's messages so far.
    max_seq: Option<i64>,
    /// The segment's last message so far: id and time.
    last_message: Option<(Uuid, DateTime<Utc>)>,
    name: Option<String>,
    topic: Option<String>,
    visibility: Option<&'static str>,
}

/// Rows loaded before the fold.
#[derive(Default)]
struct Loaded {
    /// `last_seq` of existing rooms touched by membership events.
    rooms: HashMap<Uuid, i64>,
    members: HashMap<(Uuid, Uuid), Member>,
    messages: Vec<Message>,
}

fn status_str(s: &str) -> Result<&'static str, ApplyError> {
    Ok(match s {
        "joined" => "joined",
        "invited" => "invited",
        "left" => "left",
        "kicked" => "kicked",
        other => return Err(poison(format!("unknown member status {other:?}"))),
    })
}

/// The membership events' (room, user).
fn membership_key(room_id: Uuid, event: &RoomEvent) -> Option<(Uuid, Uuid)> {
    use RoomEvent as E;
    match event {
        E::MemberInvited { user_id, .. }
        | E::MemberJoined { user_id, .. }
        | E::MemberLeft { user_id }
        | E::MemberKicked { user_id, .. }
        | E::MemberBanned { user_id, .. }
        | E::MemberRoleChanged { user_id, .. } => Some((room_id, user_id.0)),
        _ => None,
    }
}

/// The (room, seq) of the message an edit, delete or reaction changes.
fn message_key(room_id: Uuid, event: &RoomEvent) -> Result<Option<(Uuid, i64)>, ApplyError> {
    use RoomEvent as E;
    Ok(match event {
        E::MessageEdited { seq, .. }
        | E::MessageDeleted { seq, .. }
        | E::ReactionAdded { seq, .. }
        | E::ReactionRemoved { seq, .. } => Some((room_id, seq_i64(*seq)?)),
        _ => None,
    })
}

async fn load(tx: &mut PgConnection, ops: &[Op]) -> Result<Loaded, ApplyError> {
    let mut pairs: Vec<(Uuid, Uuid)> = Vec::new();
    let mut keys: Vec<(Uuid, i64)> = Vec::new();
    for op in ops {
        if let Op::Room { room_id, event, .. } = op {
            pairs.extend(membership_key(*room_id, event));
            keys.extend(message_key(*room_id, event)?);
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    keys.sort_unstable();
    keys.dedup();
    let mut loaded = Loaded::default();

    if !pairs.is_empty() {
        type Row = (
            Uuid,
            Uuid,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT p.room_id, p.user_id, r.last_seq, m.status, m.role, m.joined_at, \
             m.read_seq, m.skipped \
             FROM UNNEST($1::uuid[], $2::uuid[]) AS p(room_id, user_id) \
             LEFT JOIN rm_rooms r ON r.room_id = p.room_id \
             LEFT JOIN rm_members m ON m.room_id = p.room_id AND m.user_id = p.user_id",
        )
        .bind(pairs.iter().map(|p| p.0).collect::<Vec<_>>())
        .bind(pairs.iter().map(|p| p.1).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        for (room_id, user_id, last_seq, status, role, joined_at, read_seq, skipped) in rows {
            if let Some(last_seq) = last_seq {
                loaded.rooms.insert(room_id, last_seq);
            }
            let row = match (status, role) {
                (Some(status), Some(role)) => Some(MemberRow {
                    status: status_str(&status)?,
                    role,
                    joined_at,
                    read_seq: read_seq.unwrap_or_default(),
                    skipped: skipped.unwrap_or_default(),
                }),
                _ => None,
            };
            loaded.members.insert(
                (room_id, user_id),
                Member {
                    row,
                    changed: false,
                },
            );
        }
    }

    if !keys.is_empty() {
        type Row = (
            Uuid,
            i64,
            Uuid,
            Uuid,
            Option<String>,
            Option<DateTime<Utc>>,
            i32,
            bool,
            Option<DateTime<Utc>>,
            String,
            i64,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT m.room_id, m.seq, m.message_id, m.sender_id, m.body, m.edited_at, \
             m.edit_number, m.deleted, m.deleted_at, m.reactions::text, m.version, m.position \
             FROM UNNEST($1::uuid[], $2::int8[]) AS k(room_id, seq) \
             JOIN rm_messages m ON m.room_id = k.room_id AND m.seq = k.seq",
        )
        .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        for (
            room_id,
            seq,
            message_id,
            sender_id,
            body,
            edited_at,
            edit_number,
            deleted,
            deleted_at,
            reactions,
            version,
            position,
        ) in rows
        {
            // Not an object: the reaction statements of `apply_event` would treat it in ways
            // the fold does not copy; let careful mode apply it.
            let Ok(reactions @ Value::Object(_)) = serde_json::from_str::<Value>(&reactions) else {
                return Err(poison(format!(
                    "message {seq} of room {room_id} has reactions that are not an object"
                )));
            };
            loaded.messages.push(Message {
                room_id,
                seq,
                message_id,
                sender_id,
                body,
                edited_at,
                edit_number,
                deleted,
                deleted_at,
                reactions,
                version,
                position,
                new: None,
                changed: false,
            });
        }
    }
    Ok(loaded)
}

/// The final state of a segment, ready to be written.
struct Folded {
    users: Vec<(Uuid, String, String, DateTime<Utc>)>,
    /// (room, kind, name, topic, visibility, owner, version, position, created_at)
    new_rooms: Vec<NewRoom>,
    /// (user_lo, user_hi, room)
    direct_pairs: Vec<(Uuid, Uuid, Uuid)>,
    members: HashMap<(Uuid, Uuid), Member>,
    messages: Vec<Message>,
    /// (room, seq, sender) of each delete, for the other members' `skipped`.
    deletes: Vec<(Uuid, i64, Uuid)>,
    markers: HashMap<(Uuid, Uuid), i64>,
    rooms: HashMap<Uuid, RoomChange>,
}

struct NewRoom {
    room_id: Uuid,
    kind: &'static str,
    name: String,
    topic: String,
    visibility: &'static str,
    owner_id: Option<Uuid>,
    version: i64,
    position: i64,
    created_at: DateTime<Utc>,
}

fn room_missing(room_id: Uuid) -> ApplyError {
    poison(format!("room {room_id} is not in the read model"))
}

fn message_missing(room_id: Uuid, seq: i64) -> ApplyError {
    poison(format!(
        "message {seq} of room {room_id} is not in the read model or is deleted"
    ))
}

/// Folds the segment's events, in position order, into final state (module docs, step 2).
fn fold(ops: &[Op], loaded: Loaded) -> Result<Folded, ApplyError> {
    use RoomEvent as E;
    let mut f = Folded {
        users: Vec::new(),
        new_rooms: Vec::new(),
        direct_pairs: Vec::new(),
        members: loaded.members,
        messages: loaded.messages,
        deletes: Vec::new(),
        markers: HashMap::new(),
        rooms: HashMap::new(),
    };
    let mut message_at: HashMap<(Uuid, i64), usize> = f
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| ((m.room_id, m.seq), i))
        .collect();

    for op in ops {
        let (room_id, version, position, at, event) = match op {
            Op::User {
                user_id,
                username,
                display_name,
                at,
            } => {
                f.users
                    .push((*user_id, username.clone(), display_name.clone(), *at));
                continue;
            }
            // Never pushed to a segment: `apply_events` hands it to `Attention` and `Moderation`.
            Op::UserSetting { .. } => continue,
            Op::Room {
                room_id,
                version,
                position,
                at,
                event,
            } => (*room_id, *version, *position, *at, event),
        };
        let created = matches!(event, E::RoomCreated { .. } | E::DirectRoomOpened { .. });
        if created && f.rooms.contains_key(&room_id) {
            // Events of the room came first: one by one, they would have found no room.
            return Err(room_missing(room_id));
        }
        let room = f.rooms.entry(room_id).or_insert(RoomChange {
            created,
            version,
            position,
            member_delta: 0,
            max_seq: None,
            last_message: None,
            name: None,
            topic: None,
            visibility: None,
        });
        room.version = version;
        room.position = position;
        // The room's `last_seq` as the events so far left it, for joins (`None`: no room).
        let last_seq = |room: &RoomChange| -> Option<i64> {
            let before = if room.created {
                Some(0)
            } else {
                loaded.rooms.get(&room_id).copied()
            };
            before.map(|l| room.max_seq.map_or(l, |m| l.max(m)))
        };

        match event {
            E::RoomCreated {
                name,
                topic,
                visibility,
                created_by,
                ..
            } => f.new_rooms.push(NewRoom {
                room_id,
                kind: "group",
                name: name.as_str().to_owned(),
                topic: topic.as_str().to_owned(),
                visibility: visibility_str(*visibility),
                // The creator is the room's owner (RoomCreated v2 names them `created_by`).
                owner_id: Some(created_by.0),
                version,
                position,
                created_at: at,
            }),
            E::DirectRoomOpened { user_ids, .. } => {
                let (a, b) = (user_ids[0].0, user_ids[1].0);
                let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                f.new_rooms.push(NewRoom {
                    room_id,
                    kind: "direct",
                    name: String::new(),
                    topic: String::new(),
                    visibility: "private",
                    owner_id: None,
                    version,
                    position,
                    created_at: at,
                });
                f.direct_pairs.push((lo, hi, room_id));
            }
            E::RoomRenamed { name, .. } => room.name = Some(name.as_str().to_owned()),
            E::RoomTopicChanged { topic, .. } => room.topic = Some(topic.as_str().to_owned()),
            E::RoomVisibilityChanged { visibility, .. } => {
                room.visibility = Some(visibility_str(*visibility));
            }
            E::MemberInvited { .. }
            | E::MemberJoined { .. }
            | E::MemberLeft { .. }
            | E::MemberKicked { .. }
            | E::MemberBanned { .. }
            | E::MemberRoleChanged { .. } => {
                let Some(last_seq) = last_seq(room) else {
                    return Err(room_missing(room_id));
                };
                let key = membership_key(room_id, event).expect("a membership event");
                let member = f
                    .members
                    .get_mut(&key)
                    .expect("every membership was loaded");
                member.changed = true;
                let was_joined = member.row.as_ref().is_some_and(|r| r.status == "joined");
                match event {
                    E::MemberInvited { .. } => match &mut member.row {
                        None => {
                            member.row = Some(MemberRow {
                                status: "invited",
                                role: "member".to_owned(),
                                joined_at: None,
                                read_seq: 0,
                                skipped: 0,
                            });
                        }
                        Some(r) if r.status != "joined" => {
                            r.status = "invited";
                            r.role = "member".to_owned();
                            r.skipped = 0;
                        }
                        Some(_) => {}
                    },
                    E::MemberJoined { role, .. } => {
                        if !was_joined {
                            room.member_delta += 1;
                        }
                        let read_seq = member
                            .row
                            .as_ref()
                            .map_or(last_seq, |r| r.read_seq.max(last_seq));
                        member.row = Some(MemberRow {
                            status: "joined",
                            role: role_str(*role).to_owned(),
                            joined_at: Some(at),
                            read_seq,
                            skipped: 0,
                        });
                    }
                    E::MemberLeft { .. } | E::MemberKicked { .. } => {
                        if let Some(r) = &mut member.row {
                            if was_joined {
                                room.member_delta -= 1;
                            }
                            r.status = if matches!(event, E::MemberLeft { .. }) {
                                "left"
                            } else {
                                "kicked"
                            };
                            r.skipped = 0;
                        }
                    }
                    // As a kick for a member or an invitation; anyone else's row stays.
                    E::MemberBanned { .. } => {
                        if let Some(r) = &mut member.row
                            && matches!(r.status, "joined" | "invited")
                        {
                            if was_joined {
                                room.member_delta -= 1;
                            }
                            r.status = "kicked";
                            r.skipped = 0;
                        }
                    }
                    E::MemberRoleChanged { role, user_id, .. } => match &mut member.row {
                        Some(r) => r.role = role_str(*role).to_owned(),
                        None => {
                            return Err(poison(format!(
                                "user {} is not a member of room {room_id}",
                                user_id.0
                            )));
                        }
                    },
                    _ => unreachable!("a membership event"),
                }
            }
            E::MessageSent {
                message_id,
                seq,
                sender_id,
                body,
                reply_to,
                client_msg_id,
                attachments,
                ..
            } => {
                let seq = seq_i64(*seq)?;
                if message_at.contains_key(&(room_id, seq)) {
                    return Err(poison(format!("message {seq} of room {room_id} exists")));
                }
                room.max_seq = Some(room.max_seq.map_or(seq, |m| m.max(seq)));
                room.last_message = Some((message_id.0, at));
                // A sender whose membership the segment changes: their own message counts as
                // their membership is at this point, so the fold counts it.
                let count_own = match f.members.get_mut(&(room_id, sender_id.0)) {
                    Some(member) => {
                        if let Some(r) = &mut member.row
                            && r.status == "joined"
                        {
                            r.skipped += 1;
                            member.changed = true;
                        }
                        false
                    }
                    None => true,
                };
                message_at.insert((room_id, seq), f.messages.len());
                f.messages.push(Message {
                    room_id,
                    seq,
                    message_id: message_id.0,
                    sender_id: sender_id.0,
                    body: Some(body.as_str().to_owned()),
                    edited_at: None,
                    edit_number: 0,
                    deleted: false,
                    deleted_at: None,
                    reactions: Value::Object(Map::new()),
                    version,
                    position,
                    new: Some(NewMessage {
                        reply_to: reply_to.map(|r| r.0),
                        client_msg_id: client_msg_id.clone(),
                        attachments: crate::apply::attachments_json(attachments),
                        sent_at: at,
                        count_own,
                    }),
                    changed: true,
                });
            }
            E::MessageEdited {
                message_id, seq, ..
            }
            | E::MessageDeleted {
                message_id, seq, ..
            }
            | E::ReactionAdded {
                message_id, seq, ..
            }
            | E::ReactionRemoved {
                message_id, seq, ..
            } => {
                let seq = seq_i64(*seq)?;
                let m = message_at
                    .get(&(room_id, seq))
                    .map(|&i| &mut f.messages[i])
                    .filter(|m| m.message_id == message_id.0 && !m.deleted)
                    .ok_or_else(|| message_missing(room_id, seq))?;
                m.version = version;
                m.position = position;
                m.changed = true;
                match event {
                    E::MessageEdited {
                        body, edit_number, ..
                    } => {
                        m.body = Some(body.as_str().to_owned());
                        m.edited_at = Some(at);
                        m.edit_number = i32::try_from(*edit_number)
                            .map_err(|_| poison("edit number out of range"))?;
                    }
                    E::MessageDeleted { .. } => {
                        m.deleted = true;
                        m.body = None;
                        m.reactions = Value::Object(Map::new());
                        m.deleted_at = Some(at);
                        f.deletes.push((room_id, seq, m.sender_id));
                    }
                    E::ReactionAdded { user_id, emoji, .. } => {
                        add_reaction(&mut m.reactions, emoji.as_str(), &user_id.0.to_string())?;
                    }
                    E::ReactionRemoved { user_id, emoji, .. } => {
                        remove_reaction(&mut m.reactions, emoji.as_str(), &user_id.0.to_string())?;
                    }
                    _ => unreachable!("a message change"),
                }
            }
            E::ReadMarkerMoved { user_id, seq, .. } => {
                // A marker never moves back: only the furthest one of the segment can move it.
                let seq = seq_i64(*seq)?;
                let m = f.markers.entry((room_id, user_id.0)).or_insert(seq);
                *m = (*m).max(seq);
            }
            // Only the room's version and position (above) and `Attention` change.
            E::NotificationLevelChanged { .. } => {}
            // Only the room's version and position (above) and `Moderation` change.
            E::MemberUnbanned { .. } => {}
            // Never pushed to a segment: `apply_events` applies them where they stand.
            E::RoomRetentionChanged { .. } | E::MessagesExpired { .. } => {
                return Err(poison("a retention event in a folded segment"));
            }
        }
    }
    Ok(f)
}

/// `ReactionAdded` as `apply_event`'s jsonb expression does it: `user` is appended to the
/// emoji's list unless it is there already.
fn add_reaction(reactions: &mut Value, emoji: &str, user: &str) -> Result<(), ApplyError> {
    let reactions = reactions_object(reactions)?;
    match reactions.get_mut(emoji) {
        None => {
            reactions.insert(emoji.to_owned(), Value::Array(vec![Value::from(user)]));
        }
        Some(Value::Array(users)) => {
            if !users.iter().any(|u| u.as_str() == Some(user)) {
                users.push(Value::from(user));
            }
        }
        Some(_) => return Err(poison(format!("reaction {emoji:?} is not a list"))),
    }
    Ok(())
}

/// `ReactionRemoved` as `apply_event`'s jsonb expression does it: every `user` goes from the
/// emoji's list, and an emoji nobody uses any more disappears.
fn remove_reaction(reactions: &mut Value, emoji: &str, user: &str) -> Result<(), ApplyError> {
    let reactions = reactions_object(reactions)?;
    match reactions.get_mut(emoji) {
        None => {}
        Some(Value::Array(users)) => {
            users.retain(|u| u.as_str() != Some(user));
            if users.is_empty() {
                reactions.remove(emoji);
            }
        }
        Some(_) => return Err(poison(format!("reaction {emoji:?} is not a list"))),
    }
    Ok(())
}

fn reactions_object(reactions: &mut Value) -> Result<&mut Map<String, Value>, ApplyError> {
    reactions
        .as_object_mut()
        .ok_or_else(|| poison("reactions are not an object"))
}

async fn apply_segment(tx: &mut PgConnection, ops: &[Op]) -> Result<(), ApplyError> {
    if ops.is_empty() {
        return Ok(());
    }
    let loaded = load(tx, ops).await?;
    let f = fold(ops, loaded)?;
    write(tx, f).await
}

/// Writes a folded segment (module docs, step 3).
async fn write(tx: &mut PgConnection, f: Folded) -> Result<(), ApplyError> {
    if !f.users.is_empty() {
        sqlx::query(
            "INSERT INTO rm_users (user_id, username, display_name, registered_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])",
        )
        .bind(f.users.iter().map(|u| u.0).collect::<Vec<_>>())
        .bind(f.users.iter().map(|u| u.1.as_str()).collect::<Vec<_>>())
        .bind(f.users.iter().map(|u| u.2.as_str()).collect::<Vec<_>>())
        .bind(f.users.iter().map(|u| u.3).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    if !f.new_rooms.is_empty() {
        let r = &f.new_rooms;
        let p = &f.direct_pairs;
        sqlx::query(
            "WITH rooms AS (INSERT INTO rm_rooms (room_id, kind, name, topic, visibility, \
             owner_id, version, position, created_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::uuid[], $7::int8[], $8::int8[], $9::timestamptz[])) \
             INSERT INTO rm_direct_pairs (user_lo, user_hi, room_id) \
             SELECT * FROM UNNEST($10::uuid[], $11::uuid[], $12::uuid[])",
        )
        .bind(r.iter().map(|r| r.room_id).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.visibility).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.owner_id).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.version).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.position).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(p.iter().map(|p| p.0).collect::<Vec<_>>())
        .bind(p.iter().map(|p| p.1).collect::<Vec<_>>())
        .bind(p.iter().map(|p| p.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    let members: Vec<((Uuid, Uuid), &MemberRow)> = f
        .members
        .iter()
        .filter(|(_, m)| m.changed)
        .filter_map(|(k, m)| m.row.as_ref().map(|r| (*k, r)))
        .collect();
    if !members.is_empty() {
        sqlx::query(
            "INSERT INTO rm_members (room_id, user_id, status, role, joined_at, read_seq, \
             skipped) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], \
             $5::timestamptz[], $6::int8[], $7::int8[]) \
             ON CONFLICT (room_id, user_id) DO UPDATE SET status = EXCLUDED.status, \
             role = EXCLUDED.role, joined_at = EXCLUDED.joined_at, \
             read_seq = EXCLUDED.read_seq, skipped = EXCLUDED.skipped",
        )
        .bind(members.iter().map(|m| m.0.0).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.0.1).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.1.status).collect::<Vec<_>>())
        .bind(
            members
                .iter()
                .map(|m| m.1.role.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(members.iter().map(|m| m.1.joined_at).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.1.read_seq).collect::<Vec<_>>())
        .bind(members.iter().map(|m| m.1.skipped).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    let new: Vec<(&Message, &NewMessage)> = f
        .messages
        .iter()
        .filter_map(|m| m.new.as_ref().map(|n| (m, n)))
        .collect();
    let old: Vec<&Message> = f
        .messages
        .iter()
        .filter(|m| m.new.is_none() && m.changed)
        .collect();
    if !new.is_empty() {
        sqlx::query(
            "WITH input AS (SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], \
             $4::uuid[], $5::text[], $6::uuid[], $7::text[], $8::timestamptz[], \
             $9::timestamptz[], $10::int4[], $11::bool[], $12::timestamptz[], $13::text[], \
             $14::int8[], $15::int8[], $16::bool[], $17::text[]) AS t(room_id, seq, message_id, \
             sender_id, body, reply_to, client_msg_id, sent_at, edited_at, edit_number, deleted, \
             deleted_at, reactions, version, position, count_own, attachments)), \
             msg AS (INSERT INTO rm_messages (room_id, seq, message_id, sender_id, body, \
             reply_to, client_msg_id, sent_at, edited_at, edit_number, deleted, deleted_at, \
             reactions, version, position, attachments) \
             SELECT room_id, seq, message_id, sender_id, body, reply_to, client_msg_id, \
             sent_at, edited_at, edit_number, deleted, deleted_at, reactions::jsonb, version, \
             position, CASE WHEN deleted THEN NULL ELSE attachments::jsonb END FROM input) \
             UPDATE rm_members m SET skipped = m.skipped + c.n \
             FROM (SELECT room_id, sender_id, count(*) AS n FROM input WHERE count_own \
             GROUP BY 1, 2) c \
             WHERE m.room_id = c.room_id AND m.user_id = c.sender_id AND m.status = 'joined'",
        )
        .bind(new.iter().map(|m| m.0.room_id).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.seq).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.message_id).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.sender_id).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.body.as_deref()).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.1.reply_to).collect::<Vec<_>>())
        .bind(
            new.iter()
                .map(|m| m.1.client_msg_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(new.iter().map(|m| m.1.sent_at).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.edited_at).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.edit_number).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.deleted).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.deleted_at).collect::<Vec<_>>())
        .bind(new.iter().map(|m| reactions_json(m.0)).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.version).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.0.position).collect::<Vec<_>>())
        .bind(new.iter().map(|m| m.1.count_own).collect::<Vec<_>>())
        .bind(
            new.iter()
                .map(|m| m.1.attachments.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *tx)
        .await?;
    }
    if !old.is_empty() {
        sqlx::query(
            "UPDATE rm_messages m SET body = u.body, edited_at = u.edited_at, \
             edit_number = u.edit_number, deleted = u.deleted, deleted_at = u.deleted_at, \
             attachments = CASE WHEN u.deleted THEN NULL ELSE m.attachments END, \
             reactions = u.reactions::jsonb, version = u.version, position = u.position \
             FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[], $5::int4[], \
             $6::bool[], $7::timestamptz[], $8::text[], $9::int8[], $10::int8[]) \
             AS u(room_id, seq, body, edited_at, edit_number, deleted, deleted_at, reactions, \
             version, position) \
             WHERE m.room_id = u.room_id AND m.seq = u.seq",
        )
        .bind(old.iter().map(|m| m.room_id).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.seq).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.body.as_deref()).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.edited_at).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.edit_number).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.deleted).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.deleted_at).collect::<Vec<_>>())
        .bind(old.iter().map(|m| reactions_json(m)).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.version).collect::<Vec<_>>())
        .bind(old.iter().map(|m| m.position).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    // After the memberships are final: a delete counts for the members joined with their
    // marker below it, except its sender (whose own messages are counted already).
    if !f.deletes.is_empty() {
        let d = &f.deletes;
        sqlx::query(
            "UPDATE rm_members m SET skipped = m.skipped + c.n \
             FROM (SELECT j.room_id, j.user_id, count(*) AS n \
             FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[]) AS d(room_id, seq, sender_id) \
             JOIN rm_members j ON j.room_id = d.room_id AND j.status = 'joined' \
             AND j.read_seq < d.seq AND j.user_id <> d.sender_id GROUP BY 1, 2) c \
             WHERE m.room_id = c.room_id AND m.user_id = c.user_id",
        )
        .bind(d.iter().map(|d| d.0).collect::<Vec<_>>())
        .bind(d.iter().map(|d| d.1).collect::<Vec<_>>())
        .bind(d.iter().map(|d| d.2).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    // Last, with every message of the segment in place: read markers recount `skipped` from
    // the messages after them (as `apply_event` does), and every touched room takes its last
    // event's version and position. A room that is not there is poison, as one by one.
    let markers: Vec<(&(Uuid, Uuid), &i64)> = f.markers.iter().collect();
    let rooms: Vec<(&Uuid, &RoomChange)> = f.rooms.iter().collect();
    if rooms.is_empty() {
        // Only users: a marker always has its room among `rooms`.
        return Ok(());
    }
    let found: i64 = sqlx::query_scalar(concat!(
        "WITH input AS (SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int4[], \
         $5::int8[], $6::uuid[], $7::timestamptz[], $8::text[], $9::text[], $10::text[]) \
         AS t(room_id, version, position, member_delta, max_seq, last_message_id, \
         last_message_at, name, topic, visibility)), \
         room AS (UPDATE rm_rooms r SET version = i.version, position = i.position, \
         member_count = r.member_count + i.member_delta, \
         last_seq = GREATEST(r.last_seq, i.max_seq), \
         last_message_id = COALESCE(i.last_message_id, r.last_message_id), \
         last_message_at = COALESCE(i.last_message_at, r.last_message_at), \
         name = COALESCE(i.name, r.name), topic = COALESCE(i.topic, r.topic), \
         visibility = COALESCE(i.visibility, r.visibility) \
         FROM input i WHERE r.room_id = i.room_id RETURNING 1), \
         marker AS (UPDATE rm_members m SET read_seq = k.seq, skipped = CASE \
         WHEN m.status = 'joined' THEN ",
        crate::retention::skipped_sql!("k.room_id", "k.user_id", "k.seq"),
        " ELSE 0 END \
         FROM UNNEST($11::uuid[], $12::uuid[], $13::int8[]) AS k(room_id, user_id, seq) \
         WHERE m.room_id = k.room_id AND m.user_id = k.user_id AND m.read_seq < k.seq) \
         SELECT count(*) FROM room",
    ))
    .bind(rooms.iter().map(|r| *r.0).collect::<Vec<_>>())
    .bind(rooms.iter().map(|r| r.1.version).collect::<Vec<_>>())
    .bind(rooms.iter().map(|r| r.1.position).collect::<Vec<_>>())
    .bind(rooms.iter().map(|r| r.1.member_delta).collect::<Vec<_>>())
    .bind(rooms.iter().map(|r| r.1.max_seq).collect::<Vec<_>>())
    .bind(
        rooms
            .iter()
            .map(|r| r.1.last_message.map(|m| m.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        rooms
            .iter()
            .map(|r| r.1.last_message.map(|m| m.1))
            .collect::<Vec<_>>(),
    )
    .bind(
        rooms
            .iter()
            .map(|r| r.1.name.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        rooms
            .iter()
            .map(|r| r.1.topic.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(rooms.iter().map(|r| r.1.visibility).collect::<Vec<_>>())
    .bind(markers.iter().map(|m| m.0.0).collect::<Vec<_>>())
    .bind(markers.iter().map(|m| m.0.1).collect::<Vec<_>>())
    .bind(markers.iter().map(|m| *m.1).collect::<Vec<_>>())
    .fetch_one(&mut *tx)
    .await?;
    if usize::try_from(found).ok() != Some(rooms.len()) {
        return Err(poison("an event's room is not in the read model"));
    }
    Ok(())
}

/// The message's reactions as JSON text (bound as text, cast to jsonb, which normalises it).
fn reactions_json(m: &Message) -> String {
    m.reactions.to_string()
}
