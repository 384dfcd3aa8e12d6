//! The retention job (issue #18, `events::retention`): expires the messages that are older
//! than their room's retention period, by appending `MessagesExpired` through the room's
//! actor, so the read models, search and the live feed forget them and a rebuild from the log
//! does the same.
//!
//! Which messages are old enough is read from the read models (`rm_rooms`, `rm_messages`):
//! the log has no index on time, and one would cost every send. They lag the log by the
//! projection delay, so a message expires at most that much later. One replica runs a pass at
//! a time (a transaction-level advisory lock); a pass that finds the lock taken does nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use events::retention::{self, RetentionDays};
use events::room::RoomCommand;
use events::{RoomId, UserId};
use uuid::Uuid;

use crate::rooms::{CommandError, Submission};
use crate::state::AppState;

/// The advisory lock one pass holds (any constant no other lock of this database uses).
const LOCK: i64 = 0x6368_6174_7265_746e; // "chatretn"
/// Rooms read per query, and the oldest messages of a room looked at per pass: a room with
/// more to expire expires the rest in the next passes.
const PAGE: i64 = 1000;
/// The actor of `ExpireMessages` (the job, not a user).
pub const RETENTION_JOB: UserId = UserId(Uuid::nil());

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Another replica held the lock: nothing was looked at.
    pub skipped: bool,
    /// Rooms whose messages expired, with how far.
    pub expired: Vec<(RoomId, u64)>,
    /// Uploads of the expired messages deleted with their blobs.
    pub files: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("expiring the messages of room {room_id}: {source}")]
    Command {
        room_id: RoomId,
        #[source]
        source: CommandError,
    },
}

/// Runs a pass every `APP_RETENTION_INTERVAL_SECS`, for ever.
pub async fn run_forever(state: AppState, default: Option<RetentionDays>) {
    let every = Duration::from_secs(state.settings.retention_interval_secs.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match expire_once(&state, default, Utc::now()).await {
            Ok(p) if !p.expired.is_empty() => {
                tracing::info!(rooms = p.expired.len(), "expired messages past retention");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the retention pass failed"),
        }
    }
}

/// One pass as of `now`: every room with a retention period (its own, else `default`) whose
/// oldest messages were sent before `now − period` gets a `MessagesExpired` up to the last of
/// them (oldest first, at most [`PAGE`] messages per room).
pub async fn expire_once(
    state: &AppState,
    default: Option<RetentionDays>,
    now: DateTime<Utc>,
) -> Result<Pass, RetentionError> {
    let mut lock = state.pool.begin().await?;
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !held {
        return Ok(Pass {
            skipped: true,
            ..Pass::default()
        });
    }
    // Before the projector first ran there is nothing to read.
    let ready: bool = sqlx::query_scalar(
        "SELECT to_regclass('rm_rooms') IS NOT NULL AND to_regclass('rm_messages') IS NOT NULL",
    )
    .fetch_one(&mut *lock)
    .await?;
    let mut pass = Pass::default();
    if !ready {
        return Ok(pass);
    }
    let default_days = default.map(|d| i32::try_from(d.get()).unwrap_or(i32::MAX));
    let mut after = Uuid::nil();
    loop {
        let rooms: Vec<(Uuid, Option<i32>, i64)> = sqlx::query_as(
            "SELECT room_id, retention_days, expired_up_to FROM rm_rooms \
             WHERE room_id > $1 AND last_seq > expired_up_to \
             AND (retention_days IS NOT NULL OR $2::int IS NOT NULL) \
             ORDER BY room_id LIMIT $3",
        )
        .bind(after)
        .bind(default_days)
        .bind(PAGE)
        .fetch_all(&mut *lock)
        .await?;
        let Some(last) = rooms.last() else { break };
        after = last.0;
        for (room_id, own, expired_before) in rooms {
            let own = own
                .and_then(|d| u32::try_from(d).ok())
                .and_then(|d| RetentionDays::parse(d).ok());
            let Some(days) = retention::effective(own, default) else {
                continue;
            };
            let cutoff = now - chrono::Duration::days(i64::from(days.get()));
            let oldest: Vec<(i64, bool)> = sqlx::query_as(
                "SELECT seq, sent_at < $2 FROM rm_messages WHERE room_id = $1 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(room_id)
            .bind(cutoff)
            .bind(PAGE)
            .fetch_all(&mut *lock)
            .await?;
            let oldest = oldest
                .into_iter()
                .filter_map(|(seq, old)| u64::try_from(seq).ok().map(|s| (s, old)));
            let Some(up_to_seq) = retention::expire_up_to(oldest) else {
                continue;
            };
            let room_id = RoomId(room_id);
            let committed = state
                .rooms
                .submit(
                    room_id,
                    Submission {
                        actor: RETENTION_JOB,
                        cmds: vec![RoomCommand::ExpireMessages { up_to_seq }],
                        idempotency: None,
                        correlation_id: Uuid::now_v7(),
                    },
                )
                .await
                .map_err(|source| RetentionError::Command { room_id, source })?;
            if !committed.events.is_empty() {
                pass.expired.push((room_id, up_to_seq));
                // Their files too (those no later message sent). A failure leaves them for
                // no one: the read models no longer name them.
                let after = u64::try_from(expired_before).unwrap_or(0);
                match state.attachments.expire(room_id, after, up_to_seq).await {
                    Ok(n) => pass.files += n,
                    Err(e) => tracing::warn!(error = %e, %room_id, "expired files kept"),
                }
            }
        }
    }
    lock.commit().await?;
    Ok(pass)
}
