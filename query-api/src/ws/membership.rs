//! Who is in a room, read from the event log (the source of truth, always current).
//!
//! One statement reads the room's membership events plus its newest event, so the
//! snapshot is consistent: "members as of version V". Live events with a version
//! above V are then applied in stream order by the hub. The read models are not
//! used here because they lag the stream by the projection delay, and a snapshot
//! older than the live events already seen would re-admit a kicked user.

use crate::ws::protocol::{MEMBERSHIP_EVENT_TYPES, is_membership};
use events::room::{RoomEvent, RoomState, evolve};
use events::{RoomId, StoredEvent};
use sqlx::{PgPool, Row};

/// Membership of a room as of `version` (0 and an empty state: no such room).
pub struct Snapshot {
    pub state: RoomState,
    pub version: i64,
}

pub async fn load(log_pool: &PgPool, room_id: RoomId) -> anyhow::Result<Snapshot> {
    let types: Vec<String> = MEMBERSHIP_EVENT_TYPES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let rows = sqlx::query(
        "SELECT version, event_type, schema_version, data FROM events \
         WHERE stream_id = $1 AND (event_type = ANY($2) \
           OR version = (SELECT max(version) FROM events WHERE stream_id = $1)) \
         ORDER BY version",
    )
    .bind(room_id.stream_id())
    .bind(&types)
    .fetch_all(log_pool)
    .await?;
    let mut state = RoomState::default();
    let mut version = 0;
    for row in rows {
        version = row.try_get::<i64, _>("version")?;
        let event_type: String = row.try_get("event_type")?;
        if !MEMBERSHIP_EVENT_TYPES.contains(&event_type.as_str()) {
            continue;
        }
        let event = RoomEvent::from_stored(
            &event_type,
            row.try_get("schema_version")?,
            row.try_get("data")?,
        )?;
        if is_membership(&event) {
            state = evolve(state, &event);
        }
    }
    Ok(Snapshot { state, version })
}

/// Why a user may not subscribe: a private (or missing) room does not reveal
/// that it exists; a public one says "not a member".
pub fn refusal(state: &RoomState) -> (&'static str, &'static str) {
    if state.exists() && state.visibility == Some(events::values::Visibility::Public) {
        ("not_a_member", "you are not a member of this room")
    } else {
        ("room_not_found", "room not found")
    }
}
