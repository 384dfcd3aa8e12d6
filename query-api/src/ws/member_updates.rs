//! A member's new name or avatar, or their erasure (ADR 23), told live to the rooms they are
//! in: a `member_updated` frame per room to its subscribed members, carrying what changed
//! (`display_name`, `avatar_url`), so open clients show the new name or picture, or
//! `[erased]` and no picture for an erased member, without reloading. These
//! are user-stream events: they carry no room version, and a client that misses one (not
//! connected) reads the same from the read models when it loads the room.

use super::hub::Hub;
use super::protocol::Frame;
use eventlog::RecordedEvent;
use events::StoredEvent as _;
use events::user::UserEvent;
use serde_json::json;

/// Whether an event of a user stream changes what rooms show of its user.
pub(crate) fn changes_members(event_type: &str) -> bool {
    matches!(
        event_type,
        "DisplayNameChanged" | "AvatarChanged" | "UserErased"
    )
}

/// Tells `rec` (an event of a user stream) to the rooms this node tracks that have its user
/// as a member, when it changes what they show. `rec` was opened with the keys.
pub(crate) fn on_user_event(hub: &Hub, rec: &RecordedEvent) {
    if !changes_members(&rec.event_type) {
        return;
    }
    let event = match UserEvent::from_stored(&rec.event_type, rec.schema_version, rec.data.clone())
    {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, position = rec.position, "undecodable user event");
            return;
        }
    };
    let (user, update) = match &event {
        UserEvent::DisplayNameChanged {
            user_id,
            display_name,
        } => (*user_id, json!({ "display_name": display_name.as_str() })),
        UserEvent::AvatarChanged { user_id, avatar } => (
            *user_id,
            json!({
                "avatar_url": avatar
                    .as_ref()
                    .map(|a| events::avatar::url(*user_id, a.avatar_id)),
            }),
        ),
        UserEvent::UserErased { user_id, .. } => (
            *user_id,
            json!({
                "display_name": vault::ERASED_TEXT,
                "username": vault::erased_username(user_id.0),
                "avatar_url": null,
                "erased": true,
            }),
        ),
        _ => return,
    };
    hub.on_member_updated(user, |room_id| {
        let mut frame = json!({
            "type": "member_updated",
            "room_id": room_id,
            "user_id": user,
            "position": rec.position,
        });
        if let (Some(f), Some(u)) = (frame.as_object_mut(), update.as_object()) {
            f.extend(u.clone());
        }
        Frame::new("member_updated", &frame)
    });
}
