//! The read models of what asks for a user's attention: mentions (`rm_mentions`,
//! `rm_room_mentions`), read receipts shown to others (`rm_receipts`, `rm_private_receipts`)
//! and notification levels (`rm_notification_levels`); and the profile changes of users
//! (`rm_users.display_name`, which the fold only inserts at registration, and the avatar,
//! `rm_users.avatar_id` and `avatar_content_type`).
//!
//! These tables depend only on the events themselves, never on another read model's rows, so
//! a batch's effect on them is computed apart from the fold of [`crate::batch`]: [`Attention`]
//! collects it in log order and writes it with a few set-based statements. [`apply_one`] is
//! the reference (one event, careful mode); the two leave the same rows because every write
//! here commutes with the others except where noted:
//! - a message's mentions are inserted before any delete of it (a delete follows its message
//!   in the log), and deleted with it;
//! - a receipt only moves forward (`GREATEST`), so public markers commute;
//! - a notification level, a privacy setting, a display name and an avatar are
//!   last-writer-wins per key:
//!   the collector keeps each key's final state in log order (a name changes after its user's
//!   registration, which the fold inserts before this runs).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use events::room::RoomEvent;
use events::user::UserEvent;
use events::values::NotificationLevel;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::apply::ApplyError;

fn seq_i64(seq: u64) -> Result<i64, ApplyError> {
    i64::try_from(seq).map_err(|_| ApplyError::Poison(format!("seq {seq} out of range")))
}

/// A message's mention of one user, or of the whole room (`user: None`).
#[derive(Clone, Debug)]
struct Mention {
    room_id: Uuid,
    seq: i64,
    user: Option<Uuid>,
    message_id: Uuid,
    sender_id: Uuid,
    position: i64,
    sent_at: DateTime<Utc>,
}

/// What a batch does to the attention tables, collected in log order.
#[derive(Default)]
pub(crate) struct Attention {
    mentions: Vec<Mention>,
    /// (room, seq) of deleted messages.
    deleted: Vec<(Uuid, i64)>,
    /// The furthest public marker per (room, user).
    receipts: HashMap<(Uuid, Uuid), i64>,
    /// The final level per (room, user): `None` when forgotten (the member left).
    levels: HashMap<(Uuid, Uuid), Option<NotificationLevel>>,
    /// The final privacy setting per user.
    private: HashMap<Uuid, bool>,
    /// The final display name per user (`rm_users.display_name`, after the registrations).
    names: HashMap<Uuid, String>,
    /// The final avatar per user, `None` when removed: (id, content type).
    avatars: HashMap<Uuid, Option<(Uuid, String)>>,
    /// Users deactivated (`rm_users.deactivated`; it is never undone).
    deactivated: Vec<Uuid>,
    /// Users erased (`crate::erasure`; written last, as an erasure absorbs everything).
    erased: Vec<Uuid>,
}

impl Attention {
    pub(crate) fn room_event(
        &mut self,
        room_id: Uuid,
        position: i64,
        at: DateTime<Utc>,
        event: &RoomEvent,
    ) -> Result<(), ApplyError> {
        use RoomEvent as E;
        match event {
            E::MessageSent {
                message_id,
                seq,
                sender_id,
                mentions,
                mentions_room,
                ..
            } => {
                let seq = seq_i64(*seq)?;
                let users = mentions.iter().map(|u| Some(u.0));
                let room = mentions_room.then_some(None);
                for user in users.chain(room) {
                    self.mentions.push(Mention {
                        room_id,
                        seq,
                        user,
                        message_id: message_id.0,
                        sender_id: sender_id.0,
                        position,
                        sent_at: at,
                    });
                }
            }
            E::MessageDeleted { seq, .. } => self.deleted.push((room_id, seq_i64(*seq)?)),
            E::ReadMarkerMoved {
                user_id,
                seq,
                private: false,
            } => {
                let seq = seq_i64(*seq)?;
                let r = self.receipts.entry((room_id, user_id.0)).or_insert(seq);
                *r = (*r).max(seq);
            }
            E::NotificationLevelChanged { user_id, level } => {
                self.levels.insert((room_id, user_id.0), Some(*level));
            }
            E::MemberLeft { user_id }
            | E::MemberKicked { user_id, .. }
            | E::MemberBanned { user_id, .. } => {
                self.levels.insert((room_id, user_id.0), None);
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn user_event(&mut self, event: &UserEvent) {
        match event {
            UserEvent::ReadReceiptsPrivacyChanged { user_id, private } => {
                self.private.insert(user_id.0, *private);
            }
            UserEvent::DisplayNameChanged {
                user_id,
                display_name,
            } => {
                self.names
                    .insert(user_id.0, display_name.as_str().to_owned());
            }
            UserEvent::AvatarChanged { user_id, avatar } => {
                self.avatars.insert(
                    user_id.0,
                    avatar
                        .as_ref()
                        .map(|a| (a.avatar_id.0, a.content_type.clone())),
                );
            }
            UserEvent::UserDeactivated { user_id, .. } => self.deactivated.push(user_id.0),
            UserEvent::UserErased { user_id, .. } => self.erased.push(user_id.0),
            UserEvent::UserRegistered { .. } => {}
        }
    }

    /// Writes what was collected (module docs: why this order is the log's).
    pub(crate) async fn write(self, tx: &mut PgConnection) -> Result<(), ApplyError> {
        let (named, everyone): (Vec<&Mention>, Vec<&Mention>) =
            self.mentions.iter().partition(|m| m.user.is_some());
        if !named.is_empty() {
            sqlx::query(
                "INSERT INTO rm_mentions (room_id, seq, user_id, message_id, sender_id, position, \
                 sent_at) SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::uuid[], \
                 $5::uuid[], $6::int8[], $7::timestamptz[])",
            )
            .bind(named.iter().map(|m| m.room_id).collect::<Vec<_>>())
            .bind(named.iter().map(|m| m.seq).collect::<Vec<_>>())
            .bind(named.iter().filter_map(|m| m.user).collect::<Vec<_>>())
            .bind(named.iter().map(|m| m.message_id).collect::<Vec<_>>())
            .bind(named.iter().map(|m| m.sender_id).collect::<Vec<_>>())
            .bind(named.iter().map(|m| m.position).collect::<Vec<_>>())
            .bind(named.iter().map(|m| m.sent_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !everyone.is_empty() {
            sqlx::query(
                "INSERT INTO rm_room_mentions (room_id, seq, message_id, sender_id, position, \
                 sent_at) SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::uuid[], $4::uuid[], \
                 $5::int8[], $6::timestamptz[])",
            )
            .bind(everyone.iter().map(|m| m.room_id).collect::<Vec<_>>())
            .bind(everyone.iter().map(|m| m.seq).collect::<Vec<_>>())
            .bind(everyone.iter().map(|m| m.message_id).collect::<Vec<_>>())
            .bind(everyone.iter().map(|m| m.sender_id).collect::<Vec<_>>())
            .bind(everyone.iter().map(|m| m.position).collect::<Vec<_>>())
            .bind(everyone.iter().map(|m| m.sent_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if !self.deleted.is_empty() {
            let rooms: Vec<Uuid> = self.deleted.iter().map(|d| d.0).collect();
            let seqs: Vec<i64> = self.deleted.iter().map(|d| d.1).collect();
            for table in ["rm_mentions", "rm_room_mentions"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} t USING UNNEST($1::uuid[], $2::int8[]) AS d(room_id, seq) \
                     WHERE t.room_id = d.room_id AND t.seq = d.seq"
                )))
                .bind(&rooms)
                .bind(&seqs)
                .execute(&mut *tx)
                .await?;
            }
        }
        if !self.receipts.is_empty() {
            let (keys, seqs): (Vec<(Uuid, Uuid)>, Vec<i64>) = self.receipts.into_iter().unzip();
            sqlx::query(
                "INSERT INTO rm_receipts (room_id, user_id, seq) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[]) \
                 ON CONFLICT (room_id, user_id) DO UPDATE \
                 SET seq = GREATEST(rm_receipts.seq, EXCLUDED.seq)",
            )
            .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
            .bind(seqs)
            .execute(&mut *tx)
            .await?;
        }
        if !self.levels.is_empty() {
            let (set, forgotten): (Vec<_>, Vec<_>) =
                self.levels.into_iter().partition(|(_, l)| l.is_some());
            if !forgotten.is_empty() {
                sqlx::query(
                    "DELETE FROM rm_notification_levels t \
                     USING UNNEST($1::uuid[], $2::uuid[]) AS d(room_id, user_id) \
                     WHERE t.room_id = d.room_id AND t.user_id = d.user_id",
                )
                .bind(forgotten.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
                .bind(forgotten.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
            if !set.is_empty() {
                sqlx::query(
                    "INSERT INTO rm_notification_levels (room_id, user_id, level) \
                     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) \
                     ON CONFLICT (room_id, user_id) DO UPDATE SET level = EXCLUDED.level",
                )
                .bind(set.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
                .bind(set.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
                .bind(
                    set.iter()
                        .map(|(_, l)| l.map_or("", NotificationLevel::as_str))
                        .collect::<Vec<_>>(),
                )
                .execute(&mut *tx)
                .await?;
            }
        }
        if !self.names.is_empty() {
            // A user registered in the same batch was inserted by the fold, before this.
            let (users, names): (Vec<Uuid>, Vec<String>) = self.names.into_iter().unzip();
            let changed = sqlx::query(
                "UPDATE rm_users u SET display_name = n.name \
                 FROM UNNEST($1::uuid[], $2::text[]) AS n(user_id, name) \
                 WHERE u.user_id = n.user_id",
            )
            .bind(&users)
            .bind(&names)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if usize::try_from(changed).ok() != Some(users.len()) {
                return Err(ApplyError::Poison(
                    "a display name changed for a user the read models do not have".into(),
                ));
            }
        }
        if !self.avatars.is_empty() {
            let mut users = Vec::with_capacity(self.avatars.len());
            let mut ids = Vec::with_capacity(self.avatars.len());
            let mut types = Vec::with_capacity(self.avatars.len());
            for (user, avatar) in self.avatars {
                users.push(user);
                let (id, content_type) = avatar.unzip();
                ids.push(id);
                types.push(content_type);
            }
            let changed = sqlx::query(
                "UPDATE rm_users u SET avatar_id = a.avatar_id, \
                 avatar_content_type = a.content_type \
                 FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) \
                      AS a(user_id, avatar_id, content_type) \
                 WHERE u.user_id = a.user_id",
            )
            .bind(&users)
            .bind(&ids)
            .bind(&types)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if usize::try_from(changed).ok() != Some(users.len()) {
                return Err(ApplyError::Poison(
                    "an avatar changed for a user the read models do not have".into(),
                ));
            }
        }
        if !self.deactivated.is_empty() {
            sqlx::query("UPDATE rm_users SET deactivated = TRUE WHERE user_id = ANY($1)")
                .bind(&self.deactivated)
                .execute(&mut *tx)
                .await?;
        }
        if !self.private.is_empty() {
            let (on, off): (Vec<_>, Vec<_>) = self.private.into_iter().partition(|(_, p)| *p);
            let on: Vec<Uuid> = on.into_iter().map(|(u, _)| u).collect();
            let off: Vec<Uuid> = off.into_iter().map(|(u, _)| u).collect();
            sqlx::query("DELETE FROM rm_private_receipts WHERE user_id = ANY($1)")
                .bind(&off)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO rm_private_receipts (user_id) SELECT * FROM UNNEST($1::uuid[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&on)
            .execute(&mut *tx)
            .await?;
        }
        crate::erasure::erase(tx, &self.erased).await?;
        Ok(())
    }
}

/// The reference: one room event's effect on the attention tables.
pub(crate) async fn apply_room_event(
    tx: &mut PgConnection,
    room_id: Uuid,
    position: i64,
    at: DateTime<Utc>,
    event: &RoomEvent,
) -> Result<(), ApplyError> {
    let mut one = Attention::default();
    one.room_event(room_id, position, at, event)?;
    one.write(tx).await
}

/// The reference: one user event's effect on the attention tables.
pub(crate) async fn apply_user_event(
    tx: &mut PgConnection,
    event: &UserEvent,
) -> Result<(), ApplyError> {
    let mut one = Attention::default();
    one.user_event(event);
    one.write(tx).await
}
