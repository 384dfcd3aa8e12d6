//! Rules of the user aggregate.
#![allow(clippy::unwrap_used)]

use events::ids::UserId;
use events::user::{Register, UserError, UserEvent, UserState, decide, evolve};
use events::values::{DisplayName, Username};

fn username(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn register(user_id: UserId, display_name: Option<&str>) -> Register {
    Register {
        user_id,
        username: username("alice"),
        display_name: display_name.map(|d| DisplayName::parse(d).unwrap()),
    }
}

fn registered(events: &[UserEvent]) -> UserState {
    events.iter().fold(UserState::default(), evolve)
}

#[test]
fn a_new_user_can_register() {
    let id = UserId::new();
    assert_eq!(
        decide(&UserState::default(), register(id, Some("Alice A."))),
        Ok(vec![UserEvent::UserRegistered {
            user_id: id,
            username: username("alice"),
            display_name: DisplayName::parse("Alice A.").unwrap(),
        }])
    );
}

#[test]
fn a_user_cannot_register_twice() {
    let id = UserId::new();
    let events = decide(&UserState::default(), register(id, None)).unwrap();
    let state = registered(&events);
    assert_eq!(
        decide(&state, register(id, Some("Again"))),
        Err(UserError::AlreadyRegistered)
    );
}

#[test]
fn the_display_name_defaults_to_the_username() {
    let id = UserId::new();
    assert_eq!(
        decide(&UserState::default(), register(id, None)),
        Ok(vec![UserEvent::UserRegistered {
            user_id: id,
            username: username("alice"),
            display_name: DisplayName::parse("alice").unwrap(),
        }])
    );
}

#[test]
fn a_blank_display_name_also_defaults_to_the_username() {
    let id = UserId::new();
    let events = decide(&UserState::default(), register(id, Some("   "))).unwrap();
    let [UserEvent::UserRegistered { display_name, .. }] = events.as_slice() else {
        panic!("expected one UserRegistered, got {events:?}");
    };
    assert_eq!(display_name.as_str(), "alice");
}

#[test]
fn registering_is_remembered_in_the_state() {
    let id = UserId::new();
    let events = decide(&UserState::default(), register(id, None)).unwrap();
    assert_eq!(
        registered(&events).registered,
        Some((id, username("alice")))
    );
}

#[test]
fn an_empty_user_stream_is_not_registered() {
    assert_eq!(UserState::default().registered, None);
}
