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

mod avatars {
    use super::*;
    use events::avatar::AvatarRef;
    use events::ids::AvatarId;
    use events::user::{change_avatar, erase};

    fn picture(sha256: &str) -> AvatarRef {
        AvatarRef {
            avatar_id: AvatarId::new(),
            content_type: "image/png".into(),
            size: 100,
            sha256: sha256.into(),
            side: 256,
        }
    }

    fn alice() -> (UserId, UserState) {
        let id = UserId::new();
        let state = registered(&decide(&UserState::default(), register(id, None)).unwrap());
        (id, state)
    }

    #[test]
    fn a_new_picture_is_an_avatar_changed_and_is_remembered() {
        let (id, state) = alice();
        let a = picture("aa");
        let events = change_avatar(&state, Some(a.clone()));
        assert_eq!(
            events,
            vec![UserEvent::AvatarChanged {
                user_id: id,
                avatar: Some(a.clone()),
            }]
        );
        assert_eq!(
            events
                .iter()
                .fold(state, evolve)
                .avatar
                .map(|p| p.avatar_id),
            Some(a.avatar_id)
        );
    }

    #[test]
    fn the_same_picture_again_or_removing_none_changes_nothing() {
        let (_, state) = alice();
        assert_eq!(change_avatar(&state, None), vec![]);
        let first = change_avatar(&state, Some(picture("aa")));
        let state = first.iter().fold(state, evolve);
        // Another upload of the same bytes: another id, the same picture.
        assert_eq!(change_avatar(&state, Some(picture("aa"))), vec![]);
        assert_eq!(change_avatar(&state, Some(picture("bb"))).len(), 1);
    }

    #[test]
    fn removing_the_avatar_is_an_avatar_changed_to_none() {
        let (id, state) = alice();
        let state = change_avatar(&state, Some(picture("aa")))
            .iter()
            .fold(state, evolve);
        let events = change_avatar(&state, None);
        assert_eq!(
            events,
            vec![UserEvent::AvatarChanged {
                user_id: id,
                avatar: None,
            }]
        );
        assert_eq!(events.iter().fold(state, evolve).avatar, None);
    }

    #[test]
    fn an_erasure_clears_the_avatar_and_an_erased_account_gets_none() {
        let (id, state) = alice();
        let state = change_avatar(&state, Some(picture("aa")))
            .iter()
            .fold(state, evolve);
        let state = erase(&state, id).iter().fold(state, evolve);
        assert_eq!(state.avatar, None);
        assert_eq!(change_avatar(&state, Some(picture("bb"))), vec![]);
    }

    #[test]
    fn an_unregistered_user_gets_no_avatar() {
        assert_eq!(
            change_avatar(&UserState::default(), Some(picture("aa"))),
            vec![]
        );
    }
}
