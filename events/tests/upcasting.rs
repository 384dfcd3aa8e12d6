//! Payloads written by older builds read back as today's events (ADR 12). The fixtures are the
//! JSON an older build stored, byte for byte in meaning: never build them with today's types.
#![allow(clippy::unwrap_used)]

use events::StoredEvent;
use events::ids::{RoomId, UserId};
use events::room::{RoomCommand, RoomEvent, RoomState, decide, evolve};
use events::stored::{DecodeError, UpcastError, current_version};
use events::values::{Role, RoomName, Topic, Visibility};
use serde_json::{Value, json};
use uuid::Uuid;

const ROOM: RoomId = RoomId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));
const ALICE: UserId = UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002));
const BOB: UserId = UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003));

/// `RoomCreated` as every build before schema version 2 stored it.
fn room_created_v1() -> Value {
    json!({
        "room_id": "01900000-0000-7000-8000-000000000001",
        "name": "general",
        "topic": "chat",
        "visibility": "public",
        "owner_id": "01900000-0000-7000-8000-000000000002",
    })
}

fn room_created() -> RoomEvent {
    RoomEvent::RoomCreated {
        room_id: ROOM,
        name: RoomName::parse("general").unwrap(),
        topic: Topic::parse("chat").unwrap(),
        visibility: Visibility::Public,
        created_by: ALICE,
    }
}

#[test]
fn room_created_is_at_schema_version_2() {
    assert_eq!(current_version("RoomCreated"), Some(2));
}

#[test]
fn a_version_1_room_created_reads_back_with_its_owner_as_created_by() {
    let event = RoomEvent::from_stored("RoomCreated", 1, room_created_v1()).unwrap();
    assert_eq!(event, room_created());
}

#[test]
fn room_created_is_written_at_version_2_with_created_by() {
    let (event_type, version, data) = room_created().to_stored().unwrap();
    assert_eq!(event_type, "RoomCreated");
    assert_eq!(version, 2);
    assert_eq!(
        data,
        json!({
            "room_id": "01900000-0000-7000-8000-000000000001",
            "name": "general",
            "topic": "chat",
            "visibility": "public",
            "created_by": "01900000-0000-7000-8000-000000000002",
        })
    );
    // And a version-2 payload passes through the chain untouched.
    assert_eq!(
        RoomEvent::from_stored("RoomCreated", 2, data).unwrap(),
        room_created()
    );
}

#[test]
fn a_version_1_history_folds_into_the_same_state_as_a_current_one() {
    let joined = RoomEvent::MemberJoined {
        user_id: ALICE,
        role: Role::Owner,
    };
    let (jt, jv, jd) = joined.to_stored().unwrap();
    let old = [
        RoomEvent::from_stored("RoomCreated", 1, room_created_v1()).unwrap(),
        RoomEvent::from_stored(&jt, jv, jd).unwrap(),
    ];
    let new = [room_created(), joined];
    let fold = |events: &[RoomEvent]| events.iter().fold(RoomState::default(), evolve);
    let state = fold(&old);
    assert_eq!(state, fold(&new));
    assert_eq!(state.owner, Some(ALICE));
    // The upcast room is a working room: its owner invites.
    assert_eq!(
        decide(&state, ALICE, RoomCommand::Invite { user_id: BOB }).unwrap(),
        vec![RoomEvent::MemberInvited {
            user_id: BOB,
            invited_by: ALICE,
        }]
    );
}

#[test]
fn a_schema_version_newer_than_this_build_is_a_decode_error() {
    let (_, _, v2) = room_created().to_stored().unwrap();
    let err = RoomEvent::from_stored("RoomCreated", 3, v2).unwrap_err();
    assert!(
        matches!(
            &err,
            DecodeError::Upcast(UpcastError::FutureVersion {
                version: 3,
                current: 2,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer than this build"), "{err}");

    // Also for a type still at version 1.
    let data = json!({ "user_id": ALICE.to_string() });
    assert!(matches!(
        RoomEvent::from_stored("MemberLeft", 2, data),
        Err(DecodeError::Upcast(UpcastError::FutureVersion { .. }))
    ));
}

#[test]
fn a_payload_labelled_with_the_wrong_version_is_a_decode_error() {
    // A version-2 payload claiming version 1 has no owner_id for the step to rename.
    let (_, _, v2) = room_created().to_stored().unwrap();
    assert!(matches!(
        RoomEvent::from_stored("RoomCreated", 1, v2),
        Err(DecodeError::Upcast(UpcastError::Malformed { .. }))
    ));
    // A version-1 payload claiming version 2 skips the step and lacks created_by.
    assert!(matches!(
        RoomEvent::from_stored("RoomCreated", 2, room_created_v1()),
        Err(DecodeError::Payload(_))
    ));
    assert!(matches!(
        RoomEvent::from_stored("RoomCreated", 0, room_created_v1()),
        Err(DecodeError::Upcast(UpcastError::InvalidVersion { .. }))
    ));
}

#[test]
fn an_unknown_type_is_a_decode_error_naming_it() {
    let err = RoomEvent::from_stored("RoomExploded", 1, json!({})).unwrap_err();
    assert!(err.to_string().contains("RoomExploded"), "{err}");
}

#[test]
fn room_created_is_published_in_its_version_1_shape() {
    let (event_type, data) = room_created().to_published().unwrap();
    assert_eq!(event_type, "RoomCreated");
    assert_eq!(data, room_created_v1());
    // The same for a room an older build stored.
    let old = RoomEvent::from_stored("RoomCreated", 1, room_created_v1()).unwrap();
    assert_eq!(old.to_published().unwrap().1, room_created_v1());
}
