//! How domain events are named and versioned when stored, how older payloads are brought up to
//! date when they are read (upcasting), and the shape events are published in (ADR 12).
//!
//! The stored `event_type` of each variant is written out by hand (`#[serde(rename)]`)
//! and pinned by a test, so renaming a Rust variant never changes what is stored.
//!
//! Every stored type has a current schema version ([`SCHEMA_VERSIONS`]); [`StoredEvent::to_stored`]
//! writes it. A payload stored at an older version is passed through the [`UPCASTERS`] chain,
//! one step per version, until it has the current shape, and only then deserialized
//! ([`StoredEvent::from_stored`]). Everything that reads events (the projections, a rebuild, the
//! live feed, a room's state in the command API) goes through `from_stored`, so none of them
//! sees an old shape. A version newer than this build knows, or a step that fails, is a
//! [`DecodeError`]: the projector dead-letters such an event as it does any undecodable one.
//!
//! To change a payload's shape: bump its version in [`SCHEMA_VERSIONS`], add an [`Upcaster`]
//! from the previous version, keep a fixture of the previous version in the tests, and when the
//! change touches the published shape (the live feed's frames), map it back in [`PUBLISHERS`].

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// The current schema version of every stored event type, by stored name. `to_stored` writes
/// these; a payload stored at a lower version is upcast on read ([`UPCASTERS`]).
///
/// - `RoomCreated` 2: the creator is `created_by`, like the actor of every other room event
///   (`opened_by`, `renamed_by`, `invited_by`, …); version 1 called it `owner_id`, a name for a
///   role that belongs to the membership (`MemberJoined` with role `owner`) and that a room's
///   creator need not keep.
pub const SCHEMA_VERSIONS: &[(&str, i32)] = &[
    // user-<id>
    ("UserRegistered", 1),
    ("ReadReceiptsPrivacyChanged", 1),
    ("DisplayNameChanged", 1),
    ("AvatarChanged", 1),
    ("UserDeactivated", 1),
    ("UserErased", 1),
    // room-<id>
    ("RoomCreated", 2),
    ("DirectRoomOpened", 1),
    ("RoomRenamed", 1),
    ("RoomTopicChanged", 1),
    ("RoomVisibilityChanged", 1),
    ("MemberInvited", 1),
    ("MemberJoined", 1),
    ("MemberLeft", 1),
    ("MemberKicked", 1),
    ("MemberRoleChanged", 1),
    ("MemberBanned", 1),
    ("MemberUnbanned", 1),
    ("MessageSent", 1),
    ("MessageEdited", 1),
    ("MessageDeleted", 1),
    ("ReactionAdded", 1),
    ("ReactionRemoved", 1),
    ("ReadMarkerMoved", 1),
    ("NotificationLevelChanged", 1),
    ("RoomRetentionChanged", 1),
    ("MessagesExpired", 1),
];

/// One step of the upcaster chain: turns a payload of `event_type` at `from_version` into the
/// payload of `from_version + 1`.
#[derive(Clone, Copy, Debug)]
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: i32,
    pub step: fn(Value) -> Result<Value, UpcastError>,
}

/// Every upcasting step, applied in version order until a payload reaches its type's current
/// version. A type at version `n` has exactly one step from each of `1..n`.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "RoomCreated",
    from_version: 1,
    step: room_created_v1_to_v2,
}];

/// One mapping from an event's current payload to its published shape (see [`PUBLISHERS`]).
#[derive(Clone, Copy, Debug)]
pub struct Publisher {
    pub event_type: &'static str,
    pub map: fn(Value) -> Result<Value, UpcastError>,
}

/// The live feed's frames carry an event's payload as their `data`, a public API
/// (docs/architecture.md, "WebSocket protocol") that does not change when a stored schema
/// does. Each type is published in its version-1 shape; a type whose current shape differs
/// there has a mapping here, applied by [`StoredEvent::to_published`].
pub const PUBLISHERS: &[Publisher] = &[Publisher {
    event_type: "RoomCreated",
    map: room_created_published,
}];

/// The current schema version of a stored event type; `None` for a type this build does not
/// know.
pub fn current_version(event_type: &str) -> Option<i32> {
    SCHEMA.current_version(event_type)
}

/// Brings a payload stored at `schema_version` up to its type's current version.
pub fn upcast(event_type: &str, schema_version: i32, data: Value) -> Result<Value, UpcastError> {
    SCHEMA.upcast(event_type, schema_version, data)
}

/// A current payload in its published shape (see [`PUBLISHERS`]).
pub fn publish(event_type: &str, data: Value) -> Result<Value, UpcastError> {
    match PUBLISHERS.iter().find(|p| p.event_type == event_type) {
        Some(p) => (p.map)(data),
        None => Ok(data),
    }
}

/// The schema of this build: the current versions and the upcaster chain.
pub const SCHEMA: Schema = Schema {
    versions: SCHEMA_VERSIONS,
    upcasters: UPCASTERS,
};

/// A table of current versions and the chain that reaches them.
#[derive(Clone, Copy, Debug)]
pub struct Schema {
    pub versions: &'static [(&'static str, i32)],
    pub upcasters: &'static [Upcaster],
}

impl Schema {
    pub fn current_version(&self, event_type: &str) -> Option<i32> {
        self.versions
            .iter()
            .find(|(t, _)| *t == event_type)
            .map(|(_, v)| *v)
    }

    /// Applies the steps of `event_type` from `schema_version` up to the current version, in
    /// order. A current payload passes through unchanged.
    pub fn upcast(
        &self,
        event_type: &str,
        schema_version: i32,
        mut data: Value,
    ) -> Result<Value, UpcastError> {
        let current = self
            .current_version(event_type)
            .ok_or_else(|| UpcastError::UnknownType {
                event_type: event_type.to_owned(),
            })?;
        if schema_version < 1 {
            return Err(UpcastError::InvalidVersion {
                event_type: event_type.to_owned(),
                version: schema_version,
            });
        }
        if schema_version > current {
            return Err(UpcastError::FutureVersion {
                event_type: event_type.to_owned(),
                version: schema_version,
                current,
            });
        }
        for version in schema_version..current {
            let step = self
                .upcasters
                .iter()
                .find(|u| u.event_type == event_type && u.from_version == version)
                .ok_or_else(|| UpcastError::MissingStep {
                    event_type: event_type.to_owned(),
                    version,
                })?;
            data = (step.step)(data)?;
        }
        Ok(data)
    }
}

/// Why a stored payload could not be brought to the current schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("unknown event type {event_type:?}")]
    UnknownType { event_type: String },
    #[error("{event_type} has no schema version {version} (versions start at 1)")]
    InvalidVersion { event_type: String, version: i32 },
    #[error(
        "{event_type} schema version {version} is newer than this build knows (it reads up to {current})"
    )]
    FutureVersion {
        event_type: String,
        version: i32,
        current: i32,
    },
    #[error("no upcaster for {event_type} from schema version {version}")]
    MissingStep { event_type: String, version: i32 },
    #[error("{event_type} schema version {version} is malformed: {reason}")]
    Malformed {
        event_type: String,
        version: i32,
        reason: String,
    },
}

/// Why a stored event could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload could not be brought to the current schema.
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    /// The (upcast) payload does not match the current Rust type.
    #[error("{0}")]
    Payload(#[from] serde_json::Error),
}

/// Renames the field `from` of an object payload to `to`: the step of a renamed field. The
/// field must be there and the new name must not be.
pub fn rename_field(
    data: Value,
    (event_type, version): (&str, i32),
    from: &str,
    to: &str,
) -> Result<Value, UpcastError> {
    let malformed = |reason: String| UpcastError::Malformed {
        event_type: event_type.to_owned(),
        version,
        reason,
    };
    let Value::Object(mut obj) = data else {
        return Err(malformed("the payload is not an object".to_owned()));
    };
    if obj.contains_key(to) {
        return Err(malformed(format!("it already has {to:?}")));
    }
    let value = obj
        .remove(from)
        .ok_or_else(|| malformed(format!("{from:?} is missing")))?;
    obj.insert(to.to_owned(), value);
    Ok(Value::Object(obj))
}

/// `RoomCreated` 1 → 2: `owner_id` becomes `created_by`.
pub fn room_created_v1_to_v2(data: Value) -> Result<Value, UpcastError> {
    rename_field(data, ("RoomCreated", 1), "owner_id", "created_by")
}

/// `RoomCreated` as published: the version-1 name `owner_id`.
pub fn room_created_published(data: Value) -> Result<Value, UpcastError> {
    rename_field(data, ("RoomCreated", 2), "created_by", "owner_id")
}

/// An event that can be written to and read from the log.
pub trait StoredEvent: Serialize + DeserializeOwned + Sized {
    /// The type of stream these events live in (`room`, `user`).
    const STREAM_TYPE: &'static str;

    /// The stored type name, its current schema version and the payload, as written to the log.
    fn to_stored(&self) -> Result<(String, i32, Value), serde_json::Error> {
        let value = serde_json::to_value(self)?;
        let Value::Object(mut obj) = value else {
            return Err(serde::ser::Error::custom(
                "event did not serialize to an object",
            ));
        };
        let event_type = match obj.remove("type") {
            Some(Value::String(t)) => t,
            _ => return Err(serde::ser::Error::custom("event without a type tag")),
        };
        let version = current_version(&event_type).ok_or_else(|| {
            serde::ser::Error::custom(format!("{event_type} has no schema version"))
        })?;
        let data = obj.remove("data").unwrap_or(Value::Null);
        Ok((event_type, version, data))
    }

    /// Reads an event back from its stored type name, schema version and payload, upcasting
    /// an older payload to the current schema first.
    fn from_stored(
        event_type: &str,
        schema_version: i32,
        data: Value,
    ) -> Result<Self, DecodeError> {
        let data = upcast(event_type, schema_version, data)?;
        Ok(serde_json::from_value(
            serde_json::json!({ "type": event_type, "data": data }),
        )?)
    }

    /// The stored type name and the payload in its published shape (see [`PUBLISHERS`]): what
    /// the live feed sends as a frame's `data`.
    fn to_published(&self) -> Result<(String, Value), serde_json::Error> {
        let (event_type, _, data) = self.to_stored()?;
        let data = publish(&event_type, data).map_err(serde::ser::Error::custom)?;
        Ok((event_type, data))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn owner_to_creator() -> Value {
        json!({ "room_id": "r", "name": "general", "topic": "", "visibility": "public",
                "owner_id": "u" })
    }

    #[test]
    fn the_room_created_step_renames_owner_id_to_created_by() {
        assert_eq!(
            room_created_v1_to_v2(owner_to_creator()).unwrap(),
            json!({ "room_id": "r", "name": "general", "topic": "", "visibility": "public",
                    "created_by": "u" })
        );
    }

    #[test]
    fn the_room_created_step_refuses_a_payload_without_owner_id_or_not_an_object() {
        let mut no_owner = owner_to_creator();
        no_owner.as_object_mut().unwrap().remove("owner_id");
        let err = room_created_v1_to_v2(no_owner).unwrap_err();
        assert_eq!(
            err,
            UpcastError::Malformed {
                event_type: "RoomCreated".into(),
                version: 1,
                reason: "\"owner_id\" is missing".into(),
            }
        );
        assert!(matches!(
            room_created_v1_to_v2(json!(["owner_id"])),
            Err(UpcastError::Malformed { .. })
        ));
        let mut both = owner_to_creator();
        both["created_by"] = json!("v");
        assert!(matches!(
            room_created_v1_to_v2(both),
            Err(UpcastError::Malformed { .. })
        ));
    }

    #[test]
    fn publishing_room_created_is_the_inverse_of_its_step() {
        let v1 = owner_to_creator();
        let v2 = room_created_v1_to_v2(v1.clone()).unwrap();
        assert_eq!(publish("RoomCreated", v2).unwrap(), v1);
    }

    #[test]
    fn types_without_a_publisher_are_published_as_they_are() {
        let data = json!({ "user_id": "u" });
        assert_eq!(publish("MemberLeft", data.clone()).unwrap(), data);
    }

    // A made-up schema of three versions, to show the chain's order: each step checks that
    // the one before it ran.
    fn v1_to_v2(data: Value) -> Result<Value, UpcastError> {
        rename_field(data, ("Thing", 1), "a", "b")
    }
    fn v2_to_v3(data: Value) -> Result<Value, UpcastError> {
        rename_field(data, ("Thing", 2), "b", "c")
    }
    fn fails(_: Value) -> Result<Value, UpcastError> {
        Err(UpcastError::Malformed {
            event_type: "Broken".into(),
            version: 1,
            reason: "always".into(),
        })
    }
    const TEST_SCHEMA: Schema = Schema {
        versions: &[("Thing", 3), ("Gappy", 3), ("Broken", 2)],
        // Listed out of order on purpose: the chain goes by version, not by position here.
        upcasters: &[
            Upcaster {
                event_type: "Thing",
                from_version: 2,
                step: v2_to_v3,
            },
            Upcaster {
                event_type: "Thing",
                from_version: 1,
                step: v1_to_v2,
            },
            Upcaster {
                event_type: "Gappy",
                from_version: 2,
                step: v2_to_v3,
            },
            Upcaster {
                event_type: "Broken",
                from_version: 1,
                step: fails,
            },
        ],
    };

    #[test]
    fn the_chain_applies_every_step_in_version_order_up_to_the_current_version() {
        assert_eq!(
            TEST_SCHEMA.upcast("Thing", 1, json!({ "a": 1 })).unwrap(),
            json!({ "c": 1 })
        );
        assert_eq!(
            TEST_SCHEMA.upcast("Thing", 2, json!({ "b": 1 })).unwrap(),
            json!({ "c": 1 })
        );
    }

    #[test]
    fn a_current_payload_passes_through_unchanged() {
        // Not even looked at: a current payload is the deserializer's to judge.
        let odd = json!({ "a": 1, "anything": [null] });
        assert_eq!(TEST_SCHEMA.upcast("Thing", 3, odd.clone()).unwrap(), odd);
    }

    #[test]
    fn a_future_version_is_an_error() {
        assert_eq!(
            TEST_SCHEMA.upcast("Thing", 4, json!({ "c": 1 })),
            Err(UpcastError::FutureVersion {
                event_type: "Thing".into(),
                version: 4,
                current: 3,
            })
        );
    }

    #[test]
    fn versions_below_one_and_unknown_types_are_errors() {
        assert!(matches!(
            TEST_SCHEMA.upcast("Thing", 0, json!({})),
            Err(UpcastError::InvalidVersion { version: 0, .. })
        ));
        assert!(matches!(
            TEST_SCHEMA.upcast("Nothing", 1, json!({})),
            Err(UpcastError::UnknownType { .. })
        ));
    }

    #[test]
    fn a_missing_or_failing_step_is_an_error() {
        assert_eq!(
            TEST_SCHEMA.upcast("Gappy", 1, json!({ "b": 1 })),
            Err(UpcastError::MissingStep {
                event_type: "Gappy".into(),
                version: 1,
            })
        );
        assert!(matches!(
            TEST_SCHEMA.upcast("Broken", 1, json!({})),
            Err(UpcastError::Malformed { reason, .. }) if reason == "always"
        ));
    }

    #[test]
    fn a_step_that_fails_midway_stops_the_chain() {
        // v1 → v2 needs "a"; without it the chain stops at the first step.
        assert!(matches!(
            TEST_SCHEMA.upcast("Thing", 1, json!({ "b": 1 })),
            Err(UpcastError::Malformed { version: 1, .. })
        ));
    }

    #[test]
    fn the_chain_of_this_build_is_complete_and_has_no_stray_steps() {
        for (event_type, current) in SCHEMA_VERSIONS {
            assert!(*current >= 1, "{event_type}");
            for from in 1..*current {
                let steps = UPCASTERS
                    .iter()
                    .filter(|u| u.event_type == *event_type && u.from_version == from)
                    .count();
                assert_eq!(steps, 1, "{event_type}: steps from version {from}");
            }
        }
        for u in UPCASTERS {
            let current = current_version(u.event_type)
                .unwrap_or_else(|| panic!("step of unknown type {}", u.event_type));
            assert!(
                (1..current).contains(&u.from_version),
                "{} step from {} (current {current})",
                u.event_type,
                u.from_version
            );
        }
        for p in PUBLISHERS {
            assert!(current_version(p.event_type).is_some(), "{}", p.event_type);
        }
        let mut names: Vec<&str> = SCHEMA_VERSIONS.iter().map(|(t, _)| *t).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCHEMA_VERSIONS.len(), "a type listed twice");
    }
}
