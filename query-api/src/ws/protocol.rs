//! The JSON frames of `/v1/ws` (docs/architecture.md, "WebSocket protocol") and how a stored
//! room event becomes a server frame.

use axum::extract::ws::Utf8Bytes;
use eventlog::RecordedEvent;
use events::room::RoomEvent;
use events::{RoomId, StoredEvent, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// A serialized server frame, shared by every connection it goes to (cloning
/// is a reference-count bump), with the metrics label of its kind.
///
/// One pointer wide: every socket has two queues whose storage is allocated in
/// blocks of 32 slots up front, so the slot size is paid per idle connection.
#[derive(Clone, Debug)]
pub struct Frame(Arc<FrameData>);

#[derive(Debug)]
pub struct FrameData {
    pub text: Utf8Bytes,
    pub kind: &'static str,
}

impl std::ops::Deref for Frame {
    type Target = FrameData;
    fn deref(&self) -> &FrameData {
        &self.0
    }
}

impl Frame {
    pub fn new(kind: &'static str, value: &Value) -> Frame {
        Frame(Arc::new(FrameData {
            text: Utf8Bytes::from(value.to_string()),
            kind,
        }))
    }

    /// The same text under another metrics label.
    pub fn relabel(&self, kind: &'static str) -> Frame {
        Frame(Arc::new(FrameData {
            text: self.text.clone(),
            kind,
        }))
    }

    pub fn error(code: &str, message: &str) -> Frame {
        Frame::new(
            "error",
            &json!({ "type": "error", "code": code, "message": message }),
        )
    }

    /// An error about one room (a refused or failed subscribe or typing): it names the
    /// room, so a client subscribing to many can tell which one.
    pub fn room_error(room_id: RoomId, code: &str, message: &str) -> Frame {
        Frame::new(
            "error",
            &json!({ "type": "error", "room_id": room_id, "code": code, "message": message }),
        )
    }

    pub fn pong() -> Frame {
        Frame::new("pong", &json!({ "type": "pong" }))
    }

    /// The subscription is live after `version`; `epoch` is the read models' epoch it
    /// started in.
    pub fn subscribed(room_id: RoomId, version: i64, epoch: i64) -> Frame {
        Frame::new(
            "subscribed",
            &json!({ "type": "subscribed", "room_id": room_id, "version": version, "epoch": epoch }),
        )
    }

    /// Reload the room over REST: `too_far_behind` (a gap the server will not fill) or
    /// `epoch` (the read models were rebuilt).
    pub fn resync(room_id: RoomId, reason: &str) -> Frame {
        Frame::new(
            "resync",
            &json!({ "type": "resync", "room_id": room_id, "reason": reason }),
        )
    }
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Subscribe {
        room_id: RoomId,
        #[serde(default)]
        after_version: Option<i64>,
        /// The read models' epoch of the client's state (`Chat-Epoch` of its REST reads):
        /// a resume from another epoch gets `resync` instead of a back-fill.
        #[serde(default)]
        epoch: Option<i64>,
    },
    Unsubscribe {
        room_id: RoomId,
    },
    Typing {
        room_id: RoomId,
    },
    Ping,
}

const CLIENT_TYPES: [&str; 4] = ["subscribe", "unsubscribe", "typing", "ping"];

/// Parses a client text frame; the error is the `(code, message)` of the error frame.
pub fn parse_client(text: &str) -> Result<ClientFrame, (&'static str, String)> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ("invalid_frame", format!("not a JSON object: {e}")))?;
    let ty = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(("invalid_frame", "missing \"type\"".to_owned()))?;
    if !CLIENT_TYPES.contains(&ty) {
        return Err(("unknown_frame", format!("unknown frame type {ty:?}")));
    }
    serde_json::from_value(value).map_err(|e| ("invalid_frame", e.to_string()))
}

/// A stored room event as the live feed carries it.
#[derive(Debug)]
pub struct LiveEvent {
    pub room_id: RoomId,
    pub version: i64,
    pub position: i64,
    pub event: RoomEvent,
    pub frame: Frame,
    /// What members who may not see the event get instead ([`LiveEvent::frame_for`]).
    pub hidden: Option<Frame>,
}

impl LiveEvent {
    /// Decodes a recorded event of a `room-<id>` stream (upcast to the current
    /// schema); the frame carries it in its published shape (ADR 12). `None` for
    /// other streams.
    pub fn decode(rec: &RecordedEvent) -> Result<Option<LiveEvent>, String> {
        if rec.stream_type != RoomEvent::STREAM_TYPE {
            return Ok(None);
        }
        let room_id = RoomId::from_stream_id(&rec.stream_id)
            .ok_or_else(|| format!("bad room stream id {:?}", rec.stream_id))?;
        let event =
            RoomEvent::from_stored(&rec.event_type, rec.schema_version, rec.data.clone())
                .map_err(|e| format!("undecodable {} at {}: {e}", rec.event_type, rec.position))?;
        let (event_type, data) = event
            .to_published()
            .map_err(|e| format!("re-encoding {}: {e}", rec.event_type))?;
        let frame = Frame::new(
            "event",
            &json!({
                "type": snake_case(&event_type),
                "room_id": room_id,
                "version": rec.version,
                "position": rec.position,
                "occurred_at": rec.occurred_at,
                "data": data,
            }),
        );
        let hidden = owner_only(&event)
            .is_some()
            .then(|| hidden_frame(room_id, rec.version, rec.position));
        Ok(Some(LiveEvent {
            room_id,
            version: rec.version,
            position: rec.position,
            event,
            frame,
            hidden,
        }))
    }

    /// The frame `user` gets for this event: the event, or — for an event only its subject
    /// may see (a private read marker, someone's notification level) — a `hidden` frame with
    /// just the version and position, so every member's versions stay contiguous.
    pub fn frame_for(&self, user: UserId) -> &Frame {
        match (&self.hidden, owner_only(&self.event)) {
            (Some(hidden), Some(owner)) if owner != user => hidden,
            _ => &self.frame,
        }
    }

    /// What a back-fill sends for an event about an expired message (`MessagesExpired`): the
    /// `hidden` frame, so versions stay contiguous and nothing of the message is shown.
    pub fn expired_frame(&self) -> Frame {
        hidden_frame(self.room_id, self.version, self.position)
    }

    /// The user this event removes from the room (a leave, a kick, or a ban: a banned
    /// member is removed as a kicked one is; a ban of a non-member removes nobody's
    /// subscription, since they have none).
    pub fn removes(&self) -> Option<UserId> {
        match &self.event {
            RoomEvent::MemberLeft { user_id }
            | RoomEvent::MemberKicked { user_id, .. }
            | RoomEvent::MemberBanned { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }
}

/// An event's place in the room's stream without the event: for members who may not see it.
fn hidden_frame(room_id: RoomId, version: i64, position: i64) -> Frame {
    Frame::new(
        "hidden",
        &json!({
            "type": "hidden",
            "room_id": room_id,
            "version": version,
            "position": position,
        }),
    )
}

/// The one user who may see `event`, for events only their subject may see: a private read
/// marker (their own devices' unread counts follow it; nobody else learns of it) and a
/// notification level (a member's own choice).
fn owner_only(event: &RoomEvent) -> Option<UserId> {
    match event {
        RoomEvent::ReadMarkerMoved {
            user_id,
            private: true,
            ..
        }
        | RoomEvent::NotificationLevelChanged { user_id, .. } => Some(*user_id),
        _ => None,
    }
}

/// `MessageSent` → `message_sent`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Is this event part of what the hub keeps of a room: who is in it (and whether it is
/// visible), and how far its messages have expired (so a back-fill hides the expired ones
/// without reading the log for it)?
pub fn is_hub_state(event: &RoomEvent) -> bool {
    matches!(
        event,
        RoomEvent::RoomCreated { .. }
            | RoomEvent::DirectRoomOpened { .. }
            | RoomEvent::RoomVisibilityChanged { .. }
            | RoomEvent::MemberInvited { .. }
            | RoomEvent::MemberJoined { .. }
            | RoomEvent::MemberLeft { .. }
            | RoomEvent::MemberKicked { .. }
            | RoomEvent::MemberBanned { .. }
            | RoomEvent::MemberRoleChanged { .. }
            | RoomEvent::MessagesExpired { .. }
    )
}

/// The stored type names of [`is_hub_state`] events (for the snapshot query).
pub const HUB_STATE_EVENT_TYPES: [&str; 10] = [
    "RoomCreated",
    "DirectRoomOpened",
    "RoomVisibilityChanged",
    "MemberInvited",
    "MemberJoined",
    "MemberLeft",
    "MemberKicked",
    "MemberBanned",
    "MemberRoleChanged",
    "MessagesExpired",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A client frame as a fuzzer would write it: one of the known types (or another word)
    /// with any of the known fields, of any JSON type.
    fn frame_json() -> impl Strategy<Value = Value> {
        let value = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::from),
            Just(json!("01a23708-7683-739c-99f8-2ac27f0249ba")),
            Just(json!([])),
            Just(json!({})),
        ];
        let field =
            prop::sample::select(vec!["room_id", "after_version", "epoch", "type", "extra"]);
        (
            prop::sample::select(vec!["subscribe", "unsubscribe", "typing", "ping", "dance"]),
            prop::collection::btree_map(field.prop_map(str::to_owned), value, 0..5),
        )
            .prop_map(|(ty, mut fields)| {
                fields.entry("type".to_owned()).or_insert_with(|| ty.into());
                Value::Object(fields.into_iter().collect())
            })
    }

    proptest! {
        /// Any text is a frame or an error frame's code and message, never a panic (#15 S4).
        #[test]
        fn any_text_parses_to_a_frame_or_an_error(text in ".{0,200}") {
            if let Err((code, _)) = parse_client(&text) {
                prop_assert!(code == "invalid_frame" || code == "unknown_frame");
            }
        }

        #[test]
        fn any_frame_shaped_json_parses_to_a_frame_or_an_error(frame in frame_json()) {
            let text = frame.to_string();
            match parse_client(&text) {
                Ok(_) => prop_assert!(CLIENT_TYPES.contains(&frame["type"].as_str().unwrap_or(""))),
                Err((code, _)) => prop_assert!(code == "invalid_frame" || code == "unknown_frame"),
            }
        }
    }

    #[test]
    fn event_type_names_become_snake_case_frame_types() {
        assert_eq!(snake_case("MessageSent"), "message_sent");
        assert_eq!(snake_case("ReadMarkerMoved"), "read_marker_moved");
    }

    #[test]
    fn unknown_and_malformed_client_frames_are_told_apart() {
        assert_eq!(
            parse_client("{\"type\":\"dance\"}").err().map(|e| e.0),
            Some("unknown_frame")
        );
        assert_eq!(
            parse_client("nope").err().map(|e| e.0),
            Some("invalid_frame")
        );
        assert_eq!(
            parse_client("{\"type\":\"subscribe\"}").err().map(|e| e.0),
            Some("invalid_frame")
        );
        assert!(matches!(
            parse_client("{\"type\":\"ping\"}"),
            Ok(ClientFrame::Ping)
        ));
    }

    #[test]
    fn a_subscribe_may_carry_the_epoch_of_the_clients_state() {
        let room = "0190d1a4-0000-7000-8000-000000000001";
        let frame = format!(
            "{{\"type\":\"subscribe\",\"room_id\":\"{room}\",\"after_version\":4,\"epoch\":3}}"
        );
        assert!(matches!(
            parse_client(&frame),
            Ok(ClientFrame::Subscribe {
                after_version: Some(4),
                epoch: Some(3),
                ..
            })
        ));
        let frame = format!("{{\"type\":\"subscribe\",\"room_id\":\"{room}\"}}");
        assert!(matches!(
            parse_client(&frame),
            Ok(ClientFrame::Subscribe { epoch: None, .. })
        ));
        let frame = format!("{{\"type\":\"subscribe\",\"room_id\":\"{room}\",\"epoch\":\"3\"}}");
        assert_eq!(
            parse_client(&frame).err().map(|e| e.0),
            Some("invalid_frame")
        );
    }
}
