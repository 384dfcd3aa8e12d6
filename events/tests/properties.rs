//! Properties of the decoders, over generated input (#15 S4): whatever arrives (a text field
//! of a request, a stored payload of any type and version) is an error or a value, never a
//! panic, and a text value is accepted exactly when its published rule allows it.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default; the full tier runs
//! 100,000: `PROPTEST_CASES=100000 cargo test -p events --test properties --release`).
#![allow(clippy::unwrap_used)]

use events::room::RoomEvent;
use events::stored::StoredEvent as _;
use events::values::{
    DisplayName, Emoji, FileName, MessageBody, Password, RoomName, TextRule, Topic, Username,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const ROOM_EVENT_TYPES: [&str; 21] = [
    "RoomCreated",
    "DirectRoomOpened",
    "RoomRenamed",
    "RoomTopicChanged",
    "RoomVisibilityChanged",
    "MemberInvited",
    "MemberJoined",
    "MemberLeft",
    "MemberKicked",
    "MemberRoleChanged",
    "MemberBanned",
    "MemberUnbanned",
    "MessageSent",
    "MessageEdited",
    "MessageDeleted",
    "ReactionAdded",
    "ReactionRemoved",
    "ReadMarkerMoved",
    "NotificationLevelChanged",
    "RoomRetentionChanged",
    "MessagesExpired",
];

/// Text with the characters the rules are about: whitespace of every kind, controls, NUL,
/// slashes, letters, emoji; short and around every limit.
fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        Just(' '),
        Just('\t'),
        Just('\n'),
        Just('\u{0}'),
        Just('\u{85}'),
        Just('\u{a0}'),
        Just('\u{3000}'),
        Just('\u{feff}'),
        Just('/'),
        Just('_'),
        Just('-'),
        Just('.'),
        Just('😀'),
        prop::char::range('a', 'z'),
        prop::char::range('A', 'Z'),
        prop::char::range('0', '9'),
        any::<char>(),
    ];
    prop_oneof![
        prop::collection::vec(ch.clone(), 0..40),
        prop::collection::vec(ch, 60..90),
        (
            0usize..8,
            prop::sample::select(vec![32usize, 64, 80, 1024, 4000])
        )
            .prop_map(|(extra, limit)| vec!['x'; limit.saturating_sub(4) + extra]),
    ]
    .prop_map(|cs| cs.into_iter().collect())
}

/// Any JSON value, a few levels deep, with the field names events use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::from),
        Just(json!("01a23708-7683-739c-99f8-2ac27f0249ba")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop::sample::select(vec![
            "room_id",
            "user_id",
            "message_id",
            "name",
            "topic",
            "body",
            "seq",
            "role",
            "visibility",
            "emoji",
            "by",
            "owner",
            "creator",
            "reply_to",
            "kind",
            "members",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key.prop_map(str::to_owned), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn matches(rule: TextRule, s: &str) -> bool {
    let n = s.chars().count();
    (rule.min_chars..=rule.max_chars).contains(&n)
        && rule
            .pattern
            .is_none_or(|p| regex::Regex::new(p).unwrap().is_match(s))
}

proptest! {
    #[test]
    fn a_text_value_is_accepted_exactly_when_its_rule_allows_it(s in text()) {
        prop_assert_eq!(Username::parse(&s).is_ok(), matches(Username::RULE, &s));
        prop_assert_eq!(Password::parse(&s).is_ok(), matches(Password::RULE, &s));
        prop_assert_eq!(DisplayName::parse(&s).is_ok(), matches(DisplayName::RULE, &s));
        prop_assert_eq!(RoomName::parse(&s).is_ok(), matches(RoomName::RULE, &s));
        prop_assert_eq!(Topic::parse(&s).is_ok(), matches(Topic::RULE, &s));
        prop_assert_eq!(MessageBody::parse(&s).is_ok(), matches(MessageBody::RULE, &s));
        prop_assert_eq!(Emoji::parse(&s).is_ok(), matches(Emoji::RULE, &s));
        prop_assert_eq!(FileName::parse(&s).is_ok(), matches(FileName::RULE, &s));
    }

    #[test]
    fn any_stored_payload_of_any_type_and_version_decodes_or_is_an_error(
        event_type in prop::sample::select(ROOM_EVENT_TYPES.to_vec()),
        version in -1i32..4,
        data in json_value(),
    ) {
        // Either outcome is fine; a panic is not.
        let _ = RoomEvent::from_stored(event_type, version, data);
    }

    #[test]
    fn an_unknown_type_is_an_error(name in "[A-Za-z]{1,20}", data in json_value()) {
        prop_assume!(!ROOM_EVENT_TYPES.contains(&name.as_str()));
        prop_assert!(RoomEvent::from_stored(&name, 1, data).is_err());
    }
}
