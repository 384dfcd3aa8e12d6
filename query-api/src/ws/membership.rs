//! Who is in a room, read from the event log (the source of truth, always current).
//!
//! One statement reads the room's membership events (and its expiries) plus its newest
//! event, so the snapshot is consistent: "members as of version V". Live events with a version
//! above V are then applied in stream order by the hub. The read models are not
//! used here because they lag the stream by the projection delay, and a snapshot
//! older than the live events already seen would re-admit a kicked user.

use crate::ws::protocol::{HUB_STATE_EVENT_TYPES, is_hub_state};
use eventlog::{EventStore, PgEventStore};
use events::room::{RoomEvent, RoomState, evolve};
use events::{RoomId, StoredEvent};

/// Membership of a room, and how far its messages expired, as of `version` (0 and an empty
/// state: no such room).
pub struct Snapshot {
    pub state: RoomState,
    pub version: i64,
}

pub async fn load(log: &PgEventStore, room_id: RoomId) -> anyhow::Result<Snapshot> {
    let (events, version) = log
        .read_stream_of_types(&room_id.stream_id(), &HUB_STATE_EVENT_TYPES)
        .await?;
    let mut state = RoomState::default();
    for rec in events {
        let event = RoomEvent::from_stored(&rec.event_type, rec.schema_version, rec.data)?;
        if is_hub_state(&event) {
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
