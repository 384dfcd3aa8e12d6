//! The moderation read models (issue #18): the bans in force (`rm_room_bans`) and the audit
//! trail of what server administrators did (`rm_audit`: `UserDeactivated` and `UserErased` of
//! someone else, and the room events marked `as_admin`).
//!
//! Like [`crate::attention`], these tables depend only on the events themselves, never on
//! another read model's rows, so a batch's effect on them is collected apart from the fold of
//! [`crate::batch`] and written with a few set-based statements; [`apply_room_event`] and
//! [`apply_user_event`] are the reference (one event, careful mode). The two leave the same
//! rows: a ban is last-writer-wins per (room, user), so the collector keeps each key's final
//! state in log order, and an audit row is keyed by its event's position and written once.
//! (Banning removes the member from `rm_members` too: that is the fold's, as a kick is.)

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use events::room::RoomEvent;
use events::user::UserEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::apply::{ApplyError, role_str};

/// A ban in force.
#[derive(Clone, Debug)]
struct Ban {
    banned_by: Uuid,
    banned_at: DateTime<Utc>,
    position: i64,
}

/// One row of `rm_audit`.
#[derive(Clone, Debug)]
struct AuditRow {
    position: i64,
    occurred_at: DateTime<Utc>,
    event_type: &'static str,
    actor_id: Uuid,
    user_id: Option<Uuid>,
    room_id: Option<Uuid>,
    message_id: Option<Uuid>,
    role: Option<&'static str>,
}

/// What a batch does to the moderation tables, collected in log order.
#[derive(Default)]
pub(crate) struct Moderation {
    /// The final ban of each (room, user): `None` when lifted.
    bans: HashMap<(Uuid, Uuid), Option<Ban>>,
    audit: Vec<AuditRow>,
}

impl Moderation {
    pub(crate) fn room_event(
        &mut self,
        room_id: Uuid,
        position: i64,
        at: DateTime<Utc>,
        event: &RoomEvent,
    ) {
        use RoomEvent as E;
        let row = |event_type, actor: Uuid| AuditRow {
            position,
            occurred_at: at,
            event_type,
            actor_id: actor,
            user_id: None,
            room_id: Some(room_id),
            message_id: None,
            role: None,
        };
        match event {
            E::MemberBanned {
                user_id,
                banned_by,
                as_admin,
            } => {
                self.bans.insert(
                    (room_id, user_id.0),
                    Some(Ban {
                        banned_by: banned_by.0,
                        banned_at: at,
                        position,
                    }),
                );
                if *as_admin {
                    self.audit.push(AuditRow {
                        user_id: Some(user_id.0),
                        ..row("member_banned", banned_by.0)
                    });
                }
            }
            E::MemberUnbanned {
                user_id,
                unbanned_by,
                as_admin,
            } => {
                self.bans.insert((room_id, user_id.0), None);
                if *as_admin {
                    self.audit.push(AuditRow {
                        user_id: Some(user_id.0),
                        ..row("member_unbanned", unbanned_by.0)
                    });
                }
            }
            E::MemberRoleChanged {
                user_id,
                role,
                changed_by,
                as_admin: true,
            } => self.audit.push(AuditRow {
                user_id: Some(user_id.0),
                role: Some(role_str(*role)),
                ..row("member_role_changed", changed_by.0)
            }),
            E::MessageDeleted {
                message_id,
                deleted_by,
                as_admin: true,
                ..
            } => self.audit.push(AuditRow {
                message_id: Some(message_id.0),
                ..row("message_deleted", deleted_by.0)
            }),
            _ => {}
        }
    }

    pub(crate) fn user_event(&mut self, position: i64, at: DateTime<Utc>, event: &UserEvent) {
        // An administrator's doing, not the user's own (erasing oneself deactivates too).
        let (event_type, user_id, by) = match event {
            UserEvent::UserDeactivated {
                user_id,
                deactivated_by,
            } => ("user_deactivated", user_id, deactivated_by),
            UserEvent::UserErased { user_id, erased_by } => ("user_erased", user_id, erased_by),
            _ => return,
        };
        if by == user_id {
            return;
        }
        self.audit.push(AuditRow {
            position,
            occurred_at: at,
            event_type,
            actor_id: by.0,
            user_id: Some(user_id.0),
            room_id: None,
            message_id: None,
            role: None,
        });
    }

    /// Writes what was collected.
    pub(crate) async fn write(self, tx: &mut PgConnection) -> Result<(), ApplyError> {
        if !self.bans.is_empty() {
            let (set, lifted): (Vec<_>, Vec<_>) =
                self.bans.into_iter().partition(|(_, b)| b.is_some());
            if !lifted.is_empty() {
                sqlx::query(
                    "DELETE FROM rm_room_bans t \
                     USING UNNEST($1::uuid[], $2::uuid[]) AS d(room_id, user_id) \
                     WHERE t.room_id = d.room_id AND t.user_id = d.user_id",
                )
                .bind(lifted.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
                .bind(lifted.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
            let set: Vec<((Uuid, Uuid), Ban)> = set
                .into_iter()
                .filter_map(|(k, b)| b.map(|b| (k, b)))
                .collect();
            if !set.is_empty() {
                sqlx::query(
                    "INSERT INTO rm_room_bans (room_id, user_id, banned_by, banned_at, position) \
                     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], \
                     $4::timestamptz[], $5::int8[]) \
                     ON CONFLICT (room_id, user_id) DO UPDATE SET banned_by = EXCLUDED.banned_by, \
                     banned_at = EXCLUDED.banned_at, position = EXCLUDED.position",
                )
                .bind(set.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
                .bind(set.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
                .bind(set.iter().map(|(_, b)| b.banned_by).collect::<Vec<_>>())
                .bind(set.iter().map(|(_, b)| b.banned_at).collect::<Vec<_>>())
                .bind(set.iter().map(|(_, b)| b.position).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
            }
        }
        if !self.audit.is_empty() {
            let a = &self.audit;
            sqlx::query(
                "INSERT INTO rm_audit (position, occurred_at, event_type, actor_id, user_id, \
                 room_id, message_id, role) \
                 SELECT * FROM UNNEST($1::int8[], $2::timestamptz[], $3::text[], $4::uuid[], \
                 $5::uuid[], $6::uuid[], $7::uuid[], $8::text[])",
            )
            .bind(a.iter().map(|r| r.position).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.event_type).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.actor_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.user_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.room_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.message_id).collect::<Vec<_>>())
            .bind(a.iter().map(|r| r.role).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

/// The reference: one room event's effect on the moderation tables.
pub(crate) async fn apply_room_event(
    tx: &mut PgConnection,
    room_id: Uuid,
    position: i64,
    at: DateTime<Utc>,
    event: &RoomEvent,
) -> Result<(), ApplyError> {
    let mut one = Moderation::default();
    one.room_event(room_id, position, at, event);
    one.write(tx).await
}

/// The reference: one user event's effect on the moderation tables.
pub(crate) async fn apply_user_event(
    tx: &mut PgConnection,
    position: i64,
    at: DateTime<Utc>,
    event: &UserEvent,
) -> Result<(), ApplyError> {
    let mut one = Moderation::default();
    one.user_event(position, at, event);
    one.write(tx).await
}
