//! Golden tests of what is written to the log. Changing any expectation here
//! means stored history no longer reads back: add an upcaster instead.
#![allow(clippy::unwrap_used)]

use events::StoredEvent;
use events::avatar::AvatarRef;
use events::ids::{AvatarId, MessageId, RoomId, UserId};
use events::retention::RetentionDays;
use events::room::RoomEvent;
use events::stored::SCHEMA_VERSIONS;
use events::user::UserEvent;
use events::values::{
    DisplayName, Emoji, MessageBody, NotificationLevel, Role, RoomName, Topic, Username, Visibility,
};
use serde_json::json;
use uuid::Uuid;

const ROOM: RoomId = RoomId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001));
const ALICE: UserId = UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002));
const BOB: UserId = UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003));
const MSG: MessageId = MessageId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0004));
const PARENT: MessageId = MessageId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0005));

/// One of every room event, with the stored name it must have.
fn every_room_event() -> Vec<(&'static str, RoomEvent)> {
    let body = MessageBody::parse("hello").unwrap();
    let emoji = Emoji::parse("👍").unwrap();
    vec![
        (
            "RoomCreated",
            RoomEvent::RoomCreated {
                room_id: ROOM,
                name: RoomName::parse("general").unwrap(),
                topic: Topic::parse("chat").unwrap(),
                visibility: Visibility::Public,
                created_by: ALICE,
            },
        ),
        (
            "DirectRoomOpened",
            RoomEvent::DirectRoomOpened {
                room_id: ROOM,
                user_ids: [ALICE, BOB],
                opened_by: ALICE,
            },
        ),
        (
            "RoomRenamed",
            RoomEvent::RoomRenamed {
                name: RoomName::parse("lobby").unwrap(),
                renamed_by: ALICE,
            },
        ),
        (
            "RoomTopicChanged",
            RoomEvent::RoomTopicChanged {
                topic: Topic::parse("").unwrap(),
                changed_by: ALICE,
            },
        ),
        (
            "RoomVisibilityChanged",
            RoomEvent::RoomVisibilityChanged {
                visibility: Visibility::Private,
                changed_by: ALICE,
            },
        ),
        (
            "MemberInvited",
            RoomEvent::MemberInvited {
                user_id: BOB,
                invited_by: ALICE,
            },
        ),
        (
            "MemberJoined",
            RoomEvent::MemberJoined {
                user_id: BOB,
                role: Role::Member,
            },
        ),
        ("MemberLeft", RoomEvent::MemberLeft { user_id: BOB }),
        (
            "MemberKicked",
            RoomEvent::MemberKicked {
                user_id: BOB,
                kicked_by: ALICE,
            },
        ),
        (
            "MemberRoleChanged",
            RoomEvent::MemberRoleChanged {
                user_id: BOB,
                role: Role::Admin,
                changed_by: ALICE,
                as_admin: false,
            },
        ),
        (
            "MemberBanned",
            RoomEvent::MemberBanned {
                user_id: BOB,
                banned_by: ALICE,
                as_admin: false,
            },
        ),
        (
            "MemberUnbanned",
            RoomEvent::MemberUnbanned {
                user_id: BOB,
                unbanned_by: ALICE,
                as_admin: true,
            },
        ),
        (
            "MessageSent",
            RoomEvent::MessageSent {
                attachments: Vec::new(),
                mentions: Vec::new(),
                mentions_room: false,
                message_id: MSG,
                seq: 7,
                sender_id: BOB,
                body: body.clone(),
                reply_to: Some(PARENT),
                client_msg_id: Some("c-1".into()),
            },
        ),
        (
            "MessageEdited",
            RoomEvent::MessageEdited {
                message_id: MSG,
                seq: 7,
                body,
                edit_number: 2,
                edited_by: BOB,
            },
        ),
        (
            "MessageDeleted",
            RoomEvent::MessageDeleted {
                message_id: MSG,
                seq: 7,
                deleted_by: ALICE,
                as_admin: false,
            },
        ),
        (
            "ReactionAdded",
            RoomEvent::ReactionAdded {
                message_id: MSG,
                seq: 7,
                user_id: ALICE,
                emoji: emoji.clone(),
            },
        ),
        (
            "ReactionRemoved",
            RoomEvent::ReactionRemoved {
                message_id: MSG,
                seq: 7,
                user_id: ALICE,
                emoji,
            },
        ),
        (
            "ReadMarkerMoved",
            RoomEvent::ReadMarkerMoved {
                user_id: ALICE,
                seq: 7,
                private: false,
            },
        ),
        (
            "NotificationLevelChanged",
            RoomEvent::NotificationLevelChanged {
                user_id: ALICE,
                level: NotificationLevel::All,
            },
        ),
        (
            "RoomRetentionChanged",
            RoomEvent::RoomRetentionChanged {
                days: Some(RetentionDays::parse(30).unwrap()),
                changed_by: ALICE,
            },
        ),
        (
            "MessagesExpired",
            RoomEvent::MessagesExpired { up_to_seq: 7 },
        ),
    ]
}

fn every_user_event() -> Vec<(&'static str, UserEvent)> {
    vec![
        (
            "UserRegistered",
            UserEvent::UserRegistered {
                user_id: ALICE,
                username: Username::parse("alice").unwrap(),
                display_name: DisplayName::parse("Alice").unwrap(),
            },
        ),
        (
            "ReadReceiptsPrivacyChanged",
            UserEvent::ReadReceiptsPrivacyChanged {
                user_id: ALICE,
                private: true,
            },
        ),
        (
            "AvatarChanged",
            UserEvent::AvatarChanged {
                user_id: ALICE,
                avatar: Some(AvatarRef {
                    avatar_id: AvatarId(Uuid::from_u128(7)),
                    content_type: "image/png".into(),
                    size: 1234,
                    sha256: "ab".repeat(32),
                    side: 256,
                }),
            },
        ),
        (
            "UserErased",
            UserEvent::UserErased {
                user_id: ALICE,
                erased_by: ALICE,
            },
        ),
    ]
}

/// Fails to compile when a room event variant is added, so the golden list above
/// is kept complete.
#[allow(dead_code)]
fn room_event_list_is_exhaustive(e: &RoomEvent) {
    match e {
        RoomEvent::RoomCreated { .. }
        | RoomEvent::DirectRoomOpened { .. }
        | RoomEvent::RoomRenamed { .. }
        | RoomEvent::RoomTopicChanged { .. }
        | RoomEvent::RoomVisibilityChanged { .. }
        | RoomEvent::MemberInvited { .. }
        | RoomEvent::MemberJoined { .. }
        | RoomEvent::MemberLeft { .. }
        | RoomEvent::MemberKicked { .. }
        | RoomEvent::MemberRoleChanged { .. }
        | RoomEvent::MemberBanned { .. }
        | RoomEvent::MemberUnbanned { .. }
        | RoomEvent::MessageSent { .. }
        | RoomEvent::MessageEdited { .. }
        | RoomEvent::MessageDeleted { .. }
        | RoomEvent::ReactionAdded { .. }
        | RoomEvent::ReactionRemoved { .. }
        | RoomEvent::ReadMarkerMoved { .. }
        | RoomEvent::NotificationLevelChanged { .. }
        | RoomEvent::RoomRetentionChanged { .. }
        | RoomEvent::MessagesExpired { .. } => {}
    }
}

#[allow(dead_code)]
fn user_event_list_is_exhaustive(e: &UserEvent) {
    match e {
        UserEvent::UserRegistered { .. }
        | UserEvent::ReadReceiptsPrivacyChanged { .. }
        | UserEvent::DisplayNameChanged { .. }
        | UserEvent::AvatarChanged { .. }
        | UserEvent::UserDeactivated { .. }
        | UserEvent::UserErased { .. } => {}
    }
}

#[test]
fn every_room_event_is_stored_under_its_pinned_name() {
    let events = every_room_event();
    assert_eq!(events.len(), 21);
    for (name, event) in events {
        let (event_type, _, _) = event.to_stored().unwrap();
        assert_eq!(event_type, name);
    }
}

#[test]
fn every_user_event_is_stored_under_its_pinned_name() {
    for (name, event) in every_user_event() {
        let (event_type, _, _) = event.to_stored().unwrap();
        assert_eq!(event_type, name);
    }
}

#[test]
fn stored_names_are_unique() {
    let mut names: Vec<&str> = every_room_event()
        .iter()
        .map(|(n, _)| *n)
        .chain(every_user_event().iter().map(|(n, _)| *n))
        .collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total);
}

#[test]
fn every_room_event_reads_back_as_itself() {
    for (name, event) in every_room_event() {
        let (event_type, version, data) = event.to_stored().unwrap();
        let back = RoomEvent::from_stored(&event_type, version, data).unwrap();
        assert_eq!(back, event, "{name}");
    }
}

#[test]
fn every_user_event_reads_back_as_itself() {
    for (name, event) in every_user_event() {
        let (event_type, version, data) = event.to_stored().unwrap();
        let back = UserEvent::from_stored(&event_type, version, data).unwrap();
        assert_eq!(back, event, "{name}");
    }
}

/// The schema version each type is written at. A bump needs an upcaster from the version
/// before and a fixture of it (`tests/upcasting.rs`, ADR 12).
const PINNED_VERSIONS: [(&str, i32); 27] = [
    ("UserRegistered", 1),
    ("ReadReceiptsPrivacyChanged", 1),
    ("DisplayNameChanged", 1),
    ("AvatarChanged", 1),
    ("UserDeactivated", 1),
    ("UserErased", 1),
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

fn pinned_version(name: &str) -> i32 {
    PINNED_VERSIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("{name} has no pinned version"))
}

#[test]
fn every_event_is_stored_at_its_pinned_schema_version() {
    let mut table: Vec<(&str, i32)> = SCHEMA_VERSIONS.to_vec();
    let mut pinned = PINNED_VERSIONS.to_vec();
    table.sort_unstable();
    pinned.sort_unstable();
    assert_eq!(table, pinned);
    for (name, event) in every_room_event() {
        assert_eq!(event.to_stored().unwrap().1, pinned_version(name), "{name}");
    }
    for (name, event) in every_user_event() {
        assert_eq!(event.to_stored().unwrap().1, pinned_version(name), "{name}");
    }
}

/// The live feed publishes every event with its stored payload as `data`, except where the
/// stored shape moved on: `RoomCreated` keeps its version-1 `owner_id` there (ADR 12).
#[test]
fn every_event_is_published_in_its_version_1_shape() {
    for (name, event) in every_room_event() {
        let (_, _, mut stored) = event.to_stored().unwrap();
        if name == "RoomCreated" {
            let obj = stored.as_object_mut().unwrap();
            let creator = obj.remove("created_by").unwrap();
            obj.insert("owner_id".into(), creator);
        }
        assert_eq!(
            event.to_published().unwrap(),
            (name.to_owned(), stored),
            "{name}"
        );
    }
    for (name, event) in every_user_event() {
        let (_, _, stored) = event.to_stored().unwrap();
        assert_eq!(
            event.to_published().unwrap(),
            (name.to_owned(), stored),
            "{name}"
        );
    }
}

#[test]
fn the_payload_does_not_repeat_the_type_tag() {
    for (name, event) in every_room_event() {
        let (_, _, data) = event.to_stored().unwrap();
        let obj = data.as_object().unwrap();
        assert!(!obj.contains_key("type"), "{name}");
        assert!(!obj.contains_key("data"), "{name}");
    }
}

#[test]
fn stream_types_are_room_and_user() {
    assert_eq!(RoomEvent::STREAM_TYPE, "room");
    assert_eq!(UserEvent::STREAM_TYPE, "user");
}

#[test]
fn an_unknown_stored_name_does_not_read_back() {
    let data = json!({ "user_id": ALICE.to_string() });
    assert!(RoomEvent::from_stored("MemberVanished", 1, data).is_err());
}

#[test]
fn the_avatar_changed_payload_is_pinned() {
    let event = UserEvent::AvatarChanged {
        user_id: ALICE,
        avatar: Some(AvatarRef {
            avatar_id: AvatarId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0006)),
            content_type: "image/jpeg".into(),
            size: 4321,
            sha256: "0f".repeat(32),
            side: 256,
        }),
    };
    let (event_type, version, data) = event.to_stored().unwrap();
    assert_eq!((event_type.as_str(), version), ("AvatarChanged", 1));
    assert_eq!(
        data,
        json!({
            "user_id": "01900000-0000-7000-8000-000000000002",
            "avatar": {
                "avatar_id": "01900000-0000-7000-8000-000000000006",
                "content_type": "image/jpeg",
                "size": 4321,
                "sha256": "0f".repeat(32),
                "side": 256,
            },
        })
    );
    let removed = UserEvent::AvatarChanged {
        user_id: ALICE,
        avatar: None,
    };
    assert_eq!(
        removed.to_stored().unwrap().2,
        json!({ "user_id": "01900000-0000-7000-8000-000000000002", "avatar": null })
    );
}

#[test]
fn the_message_sent_payload_is_pinned() {
    let event = RoomEvent::MessageSent {
        attachments: Vec::new(),
        mentions: Vec::new(),
        mentions_room: false,
        message_id: MSG,
        seq: 7,
        sender_id: BOB,
        body: MessageBody::parse("hello").unwrap(),
        reply_to: Some(PARENT),
        client_msg_id: Some("c-1".into()),
    };
    let (event_type, version, data) = event.to_stored().unwrap();
    assert_eq!(event_type, "MessageSent");
    assert_eq!(version, 1);
    assert_eq!(
        data,
        json!({
            "message_id": "01900000-0000-7000-8000-000000000004",
            "seq": 7,
            "sender_id": "01900000-0000-7000-8000-000000000003",
            "body": "hello",
            "reply_to": "01900000-0000-7000-8000-000000000005",
            "client_msg_id": "c-1",
        })
    );
}

#[test]
fn a_message_sent_without_reply_or_client_id_stores_nulls() {
    let event = RoomEvent::MessageSent {
        attachments: Vec::new(),
        mentions: Vec::new(),
        mentions_room: false,
        message_id: MSG,
        seq: 1,
        sender_id: BOB,
        body: MessageBody::parse("hi").unwrap(),
        reply_to: None,
        client_msg_id: None,
    };
    let (_, _, data) = event.to_stored().unwrap();
    assert_eq!(
        data,
        json!({
            "message_id": "01900000-0000-7000-8000-000000000004",
            "seq": 1,
            "sender_id": "01900000-0000-7000-8000-000000000003",
            "body": "hi",
            "reply_to": null,
            "client_msg_id": null,
        })
    );
}

#[test]
fn a_message_sent_payload_written_by_another_language_reads_back() {
    let data = json!({
        "message_id": "01900000-0000-7000-8000-000000000004",
        "seq": 1,
        "sender_id": "01900000-0000-7000-8000-000000000003",
        "body": "hi",
        "reply_to": null,
        "client_msg_id": null,
    });
    assert_eq!(
        RoomEvent::from_stored("MessageSent", 1, data).unwrap(),
        RoomEvent::MessageSent {
            attachments: Vec::new(),
            mentions: Vec::new(),
            mentions_room: false,
            message_id: MSG,
            seq: 1,
            sender_id: BOB,
            body: MessageBody::parse("hi").unwrap(),
            reply_to: None,
            client_msg_id: None,
        }
    );
}

#[test]
fn a_message_with_attachments_stores_their_description_and_reads_back() {
    use events::AttachmentId;
    use events::attachment::{Attachment, ImageSize};
    use events::values::FileName;
    let id = AttachmentId(uuid::Uuid::parse_str("01900000-0000-7000-8000-000000000009").unwrap());
    let event = RoomEvent::MessageSent {
        message_id: MSG,
        seq: 2,
        sender_id: BOB,
        body: MessageBody::parse("look").unwrap(),
        reply_to: None,
        client_msg_id: None,
        mentions: Vec::new(),
        mentions_room: false,
        attachments: vec![Attachment {
            attachment_id: id,
            name: FileName::parse("cat.png").unwrap(),
            size: 1234,
            content_type: "image/png".into(),
            sha256: "ab".repeat(32),
            image: Some(ImageSize {
                width: 640,
                height: 480,
            }),
        }],
    };
    let (event_type, version, data) = event.to_stored().unwrap();
    assert_eq!(
        data["attachments"],
        json!([{
            "attachment_id": "01900000-0000-7000-8000-000000000009",
            "name": "cat.png",
            "size": 1234,
            "content_type": "image/png",
            "sha256": "ab".repeat(32),
            "image": { "width": 640, "height": 480 },
        }])
    );
    assert_eq!(
        RoomEvent::from_stored(&event_type, version, data).unwrap(),
        event
    );
}

#[test]
fn roles_and_visibilities_are_stored_in_snake_case() {
    let (_, _, data) = RoomEvent::MemberRoleChanged {
        user_id: BOB,
        role: Role::Admin,
        changed_by: ALICE,
        as_admin: false,
    }
    .to_stored()
    .unwrap();
    assert_eq!(data["role"], "admin");
    let (_, _, data) = RoomEvent::RoomVisibilityChanged {
        visibility: Visibility::Private,
        changed_by: ALICE,
    }
    .to_stored()
    .unwrap();
    assert_eq!(data["visibility"], "private");
    let (_, _, data) = RoomEvent::MemberJoined {
        user_id: ALICE,
        role: Role::Owner,
    }
    .to_stored()
    .unwrap();
    assert_eq!(data["role"], "owner");
}

#[test]
fn mentions_are_stored_as_user_ids_and_private_markers_say_so() {
    let event = RoomEvent::MessageSent {
        attachments: Vec::new(),
        message_id: MSG,
        seq: 3,
        sender_id: BOB,
        body: MessageBody::parse("@alice @room").unwrap(),
        reply_to: None,
        client_msg_id: None,
        mentions: vec![ALICE],
        mentions_room: true,
    };
    let (_, version, data) = event.to_stored().unwrap();
    assert_eq!(version, 1);
    assert_eq!(
        data["mentions"],
        json!(["01900000-0000-7000-8000-000000000002"])
    );
    assert_eq!(data["mentions_room"], json!(true));
    assert_eq!(
        RoomEvent::from_stored("MessageSent", 1, data).unwrap(),
        event
    );

    let marker = RoomEvent::ReadMarkerMoved {
        user_id: ALICE,
        seq: 3,
        private: true,
    };
    let (_, _, data) = marker.to_stored().unwrap();
    assert_eq!(
        data,
        json!({"user_id": "01900000-0000-7000-8000-000000000002", "seq": 3, "private": true})
    );
    // A marker stored before receipts could be private reads back as a public one.
    let old = json!({"user_id": "01900000-0000-7000-8000-000000000002", "seq": 3});
    assert_eq!(
        RoomEvent::from_stored("ReadMarkerMoved", 1, old).unwrap(),
        RoomEvent::ReadMarkerMoved {
            user_id: ALICE,
            seq: 3,
            private: false
        }
    );
}

#[test]
fn the_admin_flag_is_stored_only_when_set_and_older_payloads_read_back_without_it() {
    let by_admin = RoomEvent::MessageDeleted {
        message_id: MSG,
        seq: 7,
        deleted_by: ALICE,
        as_admin: true,
    };
    let (_, version, data) = by_admin.to_stored().unwrap();
    assert_eq!(version, 1);
    assert_eq!(
        data,
        json!({
            "message_id": "01900000-0000-7000-8000-000000000004",
            "seq": 7,
            "deleted_by": "01900000-0000-7000-8000-000000000002",
            "as_admin": true,
        })
    );
    assert_eq!(
        RoomEvent::from_stored("MessageDeleted", 1, data).unwrap(),
        by_admin
    );
    // Written before server administrators could act in rooms: a moderator's or author's.
    let old = json!({
        "message_id": "01900000-0000-7000-8000-000000000004",
        "seq": 7,
        "deleted_by": "01900000-0000-7000-8000-000000000002",
    });
    assert_eq!(
        RoomEvent::from_stored("MessageDeleted", 1, old.clone()).unwrap(),
        RoomEvent::MessageDeleted {
            message_id: MSG,
            seq: 7,
            deleted_by: ALICE,
            as_admin: false,
        }
    );
    let (_, _, again) = RoomEvent::MessageDeleted {
        message_id: MSG,
        seq: 7,
        deleted_by: ALICE,
        as_admin: false,
    }
    .to_stored()
    .unwrap();
    assert_eq!(again, old, "unflagged events are stored as before");
    let (_, _, ban) = RoomEvent::MemberBanned {
        user_id: BOB,
        banned_by: ALICE,
        as_admin: false,
    }
    .to_stored()
    .unwrap();
    assert_eq!(
        ban,
        json!({
            "user_id": "01900000-0000-7000-8000-000000000003",
            "banned_by": "01900000-0000-7000-8000-000000000002",
        })
    );
}
