//! Every rule of `room::decide`, as given/when/then scenarios.
#![allow(clippy::unwrap_used)]

mod support;

use events::ids::RoomId;
use events::room::{MAX_REACTIONS_PER_USER_PER_MESSAGE, RoomCommand, RoomError, RoomEvent};
use events::values::{Role, Visibility};
use support::*;

mod creating_a_room {
    use super::*;

    #[test]
    fn creating_a_room_makes_the_creator_its_owner() {
        given(vec![])
            .when(OWNER, create(Visibility::Public))
            .then(vec![
                RoomEvent::RoomCreated {
                    room_id: ROOM,
                    name: name("general"),
                    topic: topic("chat"),
                    visibility: Visibility::Public,
                    created_by: OWNER,
                },
                joined_as(OWNER, Role::Owner),
            ]);
    }

    #[test]
    fn a_private_room_can_be_created() {
        given(vec![])
            .when(OWNER, create(Visibility::Private))
            .then(private_room());
    }

    #[test]
    fn a_room_cannot_be_created_twice() {
        given(public_room())
            .when(ALICE, create(Visibility::Public))
            .then_err(RoomError::AlreadyExists);
    }

    #[test]
    fn a_group_room_cannot_be_created_over_a_direct_room() {
        given(direct_room())
            .when(ALICE, create(Visibility::Private))
            .then_err(RoomError::AlreadyExists);
    }

    #[test]
    fn after_creation_the_owner_is_a_member_with_the_owner_role() {
        let g = given(public_room());
        assert_eq!(g.state().role_of(OWNER), Some(Role::Owner));
        assert_eq!(g.state().owner, Some(OWNER));
    }
}

mod a_missing_room {
    use super::*;

    #[test]
    fn every_command_but_create_and_open_direct_on_a_missing_room_is_not_found() {
        let commands = vec![
            RoomCommand::Rename {
                name: name("other"),
            },
            RoomCommand::ChangeTopic { topic: topic("t") },
            RoomCommand::ChangeVisibility {
                visibility: Visibility::Private,
            },
            invite(BOB),
            RoomCommand::Join,
            RoomCommand::Leave,
            kick(BOB),
            change_role(BOB, Role::Admin),
            send(M1),
            edit(M1),
            delete(M1),
            react(M1, "👍"),
            unreact(M1, "👍"),
            mark_read(0),
        ];
        for cmd in commands {
            given(vec![]).when(ALICE, cmd).then_err(RoomError::NotFound);
        }
    }
}

mod direct_rooms {
    use super::*;

    #[test]
    fn opening_a_direct_room_joins_both_users() {
        given(vec![])
            .when(ALICE, open_direct(BOB))
            .then(direct_room());
    }

    #[test]
    fn a_direct_room_with_oneself_is_refused() {
        given(vec![])
            .when(ALICE, open_direct(ALICE))
            .then_err(RoomError::DirectWithSelf);
    }

    #[test]
    fn reopening_a_direct_room_both_are_in_changes_nothing() {
        given(direct_room())
            .when(ALICE, open_direct(BOB))
            .then_nothing();
        given(direct_room())
            .when(BOB, open_direct(ALICE))
            .then_nothing();
    }

    #[test]
    fn reopening_a_direct_room_brings_back_only_the_user_who_left() {
        given(history([direct_room(), vec![left(BOB)]]))
            .when(ALICE, open_direct(BOB))
            .then(vec![joined(BOB)]);
    }

    #[test]
    fn reopening_a_direct_room_one_has_left_brings_that_one_back() {
        given(history([direct_room(), vec![left(ALICE)]]))
            .when(ALICE, open_direct(BOB))
            .then(vec![joined(ALICE)]);
    }

    #[test]
    fn reopening_a_direct_room_both_have_left_brings_both_back() {
        given(history([direct_room(), vec![left(ALICE), left(BOB)]]))
            .when(BOB, open_direct(ALICE))
            .then(vec![joined(ALICE), joined(BOB)]);
    }

    #[test]
    fn a_third_party_cannot_reopen_someone_elses_direct_room() {
        given(direct_room())
            .when(STRANGER, open_direct(ALICE))
            .then_err(RoomError::AlreadyExists);
    }

    #[test]
    fn a_pair_member_cannot_open_the_direct_room_with_someone_else() {
        given(direct_room())
            .when(ALICE, open_direct(STRANGER))
            .then_err(RoomError::AlreadyExists);
    }

    #[test]
    fn a_pair_member_reopening_with_themself_is_refused() {
        given(direct_room())
            .when(ALICE, open_direct(ALICE))
            .then_err(RoomError::AlreadyExists);
    }

    #[test]
    fn a_direct_room_cannot_be_opened_over_a_group_room() {
        given(public_room())
            .when(OWNER, open_direct(ALICE))
            .then_err(RoomError::AlreadyExists);
    }

    #[test]
    fn a_direct_room_cannot_be_renamed_or_retopiced_or_made_public() {
        given(direct_room())
            .when(ALICE, RoomCommand::Rename { name: name("ours") })
            .then_err(RoomError::DirectRoom);
        given(direct_room())
            .when(BOB, RoomCommand::ChangeTopic { topic: topic("t") })
            .then_err(RoomError::DirectRoom);
        given(direct_room())
            .when(
                ALICE,
                RoomCommand::ChangeVisibility {
                    visibility: Visibility::Public,
                },
            )
            .then_err(RoomError::DirectRoom);
    }

    #[test]
    fn nobody_can_be_invited_into_a_direct_room() {
        given(direct_room())
            .when(ALICE, invite(STRANGER))
            .then_err(RoomError::DirectRoom);
    }

    #[test]
    fn nobody_can_be_kicked_from_a_direct_room() {
        given(direct_room())
            .when(ALICE, kick(BOB))
            .then_err(RoomError::DirectRoom);
    }

    #[test]
    fn roles_cannot_be_changed_in_a_direct_room() {
        given(direct_room())
            .when(ALICE, change_role(BOB, Role::Admin))
            .then_err(RoomError::DirectRoom);
    }

    #[test]
    fn a_stranger_cannot_join_a_direct_room_and_does_not_learn_it_exists() {
        given(direct_room())
            .when(STRANGER, RoomCommand::Join)
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_pair_member_who_left_cannot_join_but_must_reopen() {
        given(history([direct_room(), vec![left(BOB)]]))
            .when(BOB, RoomCommand::Join)
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_pair_member_joining_again_is_already_a_member() {
        given(direct_room())
            .when(ALICE, RoomCommand::Join)
            .then_err(RoomError::AlreadyMember);
    }

    #[test]
    fn a_stranger_cannot_send_into_a_direct_room_and_does_not_learn_it_exists() {
        given(direct_room())
            .when(STRANGER, send(M1))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn in_a_direct_room_one_cannot_edit_or_delete_the_others_message() {
        let h = history([direct_room(), vec![sent(M1, 1, ALICE)]]);
        given(h.clone())
            .when(BOB, edit(M1))
            .then_err(RoomError::NotAuthor);
        given(h)
            .when(BOB, delete(M1))
            .then_err(RoomError::NotAuthor);
    }

    #[test]
    fn in_a_direct_room_the_author_can_delete_their_message() {
        given(history([direct_room(), vec![sent(M1, 1, ALICE)]]))
            .when(ALICE, delete(M1))
            .then(vec![deleted(M1, 1, ALICE)]);
    }

    #[test]
    fn a_pair_member_can_leave_a_direct_room() {
        given(direct_room())
            .when(BOB, RoomCommand::Leave)
            .then(vec![left(BOB)]);
    }

    #[test]
    fn the_direct_room_id_is_the_same_whoever_opens_it() {
        assert_eq!(RoomId::direct(ALICE, BOB), RoomId::direct(BOB, ALICE));
    }
}

mod room_settings {
    use super::*;

    fn rename(s: &str) -> RoomCommand {
        RoomCommand::Rename { name: name(s) }
    }

    #[test]
    fn the_owner_can_rename_the_room() {
        given(busy_room(Visibility::Public))
            .when(OWNER, rename("lobby"))
            .then(vec![RoomEvent::RoomRenamed {
                name: name("lobby"),
                renamed_by: OWNER,
            }]);
    }

    #[test]
    fn an_admin_can_rename_the_room() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, rename("lobby"))
            .then(vec![RoomEvent::RoomRenamed {
                name: name("lobby"),
                renamed_by: ADMIN,
            }]);
    }

    #[test]
    fn a_member_cannot_rename_the_room() {
        given(busy_room(Visibility::Public))
            .when(ALICE, rename("lobby"))
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn a_non_member_of_a_public_room_cannot_rename_it() {
        given(busy_room(Visibility::Public))
            .when(STRANGER, rename("lobby"))
            .then_err(RoomError::NotMember);
    }

    #[test]
    fn a_non_member_of_a_private_room_is_told_it_does_not_exist() {
        given(busy_room(Visibility::Private))
            .when(STRANGER, rename("lobby"))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn renaming_is_remembered_in_the_state() {
        let g = given(history([
            public_room(),
            vec![RoomEvent::RoomRenamed {
                name: name("lobby"),
                renamed_by: OWNER,
            }],
        ]));
        assert_eq!(g.state().name, Some(name("lobby")));
    }

    #[test]
    fn an_admin_can_change_the_topic() {
        given(busy_room(Visibility::Public))
            .when(
                ADMIN,
                RoomCommand::ChangeTopic {
                    topic: topic("news"),
                },
            )
            .then(vec![RoomEvent::RoomTopicChanged {
                topic: topic("news"),
                changed_by: ADMIN,
            }]);
    }

    #[test]
    fn a_member_cannot_change_the_topic() {
        given(busy_room(Visibility::Public))
            .when(
                BOB,
                RoomCommand::ChangeTopic {
                    topic: topic("news"),
                },
            )
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn the_owner_can_make_a_public_room_private() {
        given(busy_room(Visibility::Public))
            .when(
                OWNER,
                RoomCommand::ChangeVisibility {
                    visibility: Visibility::Private,
                },
            )
            .then(vec![RoomEvent::RoomVisibilityChanged {
                visibility: Visibility::Private,
                changed_by: OWNER,
            }]);
    }

    #[test]
    fn an_admin_can_make_a_private_room_public() {
        given(busy_room(Visibility::Private))
            .when(
                ADMIN,
                RoomCommand::ChangeVisibility {
                    visibility: Visibility::Public,
                },
            )
            .then(vec![RoomEvent::RoomVisibilityChanged {
                visibility: Visibility::Public,
                changed_by: ADMIN,
            }]);
    }

    #[test]
    fn setting_the_visibility_a_room_already_has_changes_nothing() {
        given(busy_room(Visibility::Public))
            .when(
                OWNER,
                RoomCommand::ChangeVisibility {
                    visibility: Visibility::Public,
                },
            )
            .then_nothing();
    }

    #[test]
    fn a_member_cannot_change_the_visibility() {
        given(busy_room(Visibility::Public))
            .when(
                ALICE,
                RoomCommand::ChangeVisibility {
                    visibility: Visibility::Private,
                },
            )
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn a_room_made_private_requires_an_invite_to_join() {
        given(history([
            public_room(),
            vec![RoomEvent::RoomVisibilityChanged {
                visibility: Visibility::Private,
                changed_by: OWNER,
            }],
        ]))
        .when(ALICE, RoomCommand::Join)
        .then_err(RoomError::NotFound);
    }
}

mod inviting {
    use super::*;

    #[test]
    fn in_a_private_room_the_owner_can_invite() {
        given(busy_room(Visibility::Private))
            .when(OWNER, invite(STRANGER))
            .then(vec![invited(STRANGER, OWNER)]);
    }

    #[test]
    fn in_a_private_room_an_admin_can_invite() {
        given(busy_room(Visibility::Private))
            .when(ADMIN, invite(STRANGER))
            .then(vec![invited(STRANGER, ADMIN)]);
    }

    #[test]
    fn in_a_private_room_a_member_cannot_invite() {
        given(busy_room(Visibility::Private))
            .when(ALICE, invite(STRANGER))
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn in_a_public_room_any_member_can_invite() {
        given(busy_room(Visibility::Public))
            .when(ALICE, invite(STRANGER))
            .then(vec![invited(STRANGER, ALICE)]);
    }

    #[test]
    fn a_non_member_of_a_public_room_cannot_invite() {
        given(busy_room(Visibility::Public))
            .when(STRANGER, invite(ALICE))
            .then_err(RoomError::NotMember);
    }

    #[test]
    fn a_non_member_of_a_private_room_cannot_invite_and_does_not_learn_it_exists() {
        given(busy_room(Visibility::Private))
            .when(STRANGER, invite(STRANGER))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_member_cannot_be_invited() {
        given(busy_room(Visibility::Public))
            .when(ALICE, invite(BOB))
            .then_err(RoomError::AlreadyMember);
    }

    #[test]
    fn an_invited_user_cannot_be_invited_again() {
        given(history([
            busy_room(Visibility::Private),
            vec![invited(STRANGER, OWNER)],
        ]))
        .when(ADMIN, invite(STRANGER))
        .then_err(RoomError::AlreadyInvited);
    }

    #[test]
    fn joining_uses_up_the_invite() {
        let g = given(history([
            private_room(),
            vec![invited(ALICE, OWNER), joined(ALICE)],
        ]));
        assert!(g.state().invited.is_empty());
        assert!(g.state().is_member(ALICE));
    }
}

mod joining_and_leaving {
    use super::*;

    #[test]
    fn anyone_can_join_a_public_room() {
        given(public_room())
            .when(ALICE, RoomCommand::Join)
            .then(vec![joined(ALICE)]);
    }

    #[test]
    fn an_uninvited_user_cannot_join_a_private_room_and_does_not_learn_it_exists() {
        given(private_room())
            .when(ALICE, RoomCommand::Join)
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn an_invited_user_can_join_a_private_room() {
        given(history([private_room(), vec![invited(ALICE, OWNER)]]))
            .when(ALICE, RoomCommand::Join)
            .then(vec![joined(ALICE)]);
    }

    #[test]
    fn a_member_cannot_join_again() {
        given(busy_room(Visibility::Public))
            .when(ALICE, RoomCommand::Join)
            .then_err(RoomError::AlreadyMember);
    }

    #[test]
    fn a_member_can_leave() {
        given(busy_room(Visibility::Public))
            .when(ALICE, RoomCommand::Leave)
            .then(vec![left(ALICE)]);
    }

    #[test]
    fn the_owner_cannot_leave_a_group_room() {
        given(busy_room(Visibility::Public))
            .when(OWNER, RoomCommand::Leave)
            .then_err(RoomError::OwnerCannotLeave);
    }

    #[test]
    fn an_admin_can_leave() {
        given(busy_room(Visibility::Private))
            .when(ADMIN, RoomCommand::Leave)
            .then(vec![left(ADMIN)]);
    }

    #[test]
    fn a_non_member_cannot_leave_a_public_room() {
        given(public_room())
            .when(ALICE, RoomCommand::Leave)
            .then_err(RoomError::NotMember);
    }

    #[test]
    fn a_non_member_cannot_leave_a_private_room_and_does_not_learn_it_exists() {
        given(private_room())
            .when(ALICE, RoomCommand::Leave)
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_user_who_left_a_public_room_can_join_again() {
        given(history([busy_room(Visibility::Public), vec![left(ALICE)]]))
            .when(ALICE, RoomCommand::Join)
            .then(vec![joined(ALICE)]);
    }

    #[test]
    fn a_user_who_left_a_private_room_needs_a_new_invite() {
        given(history([
            private_room(),
            vec![invited(ALICE, OWNER), joined(ALICE), left(ALICE)],
        ]))
        .when(ALICE, RoomCommand::Join)
        .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_left_event_also_drops_an_outstanding_invite() {
        let g = given(history([
            private_room(),
            vec![invited(ALICE, OWNER), left(ALICE)],
        ]));
        assert!(g.state().invited.is_empty());
    }

    #[test]
    fn a_promoted_admin_who_leaves_and_rejoins_is_a_plain_member() {
        given(history([busy_room(Visibility::Public), vec![left(ADMIN)]]))
            .when(ADMIN, RoomCommand::Join)
            .then(vec![joined(ADMIN)]);
    }
}

mod kicking {
    use super::*;

    #[test]
    fn a_member_cannot_kick() {
        given(busy_room(Visibility::Public))
            .when(ALICE, kick(BOB))
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn a_non_member_of_a_public_room_cannot_kick() {
        given(busy_room(Visibility::Public))
            .when(STRANGER, kick(BOB))
            .then_err(RoomError::NotMember);
    }

    #[test]
    fn an_admin_can_kick_a_member() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, kick(ALICE))
            .then(vec![kicked(ALICE, ADMIN)]);
    }

    #[test]
    fn the_owner_can_kick_a_member() {
        given(busy_room(Visibility::Private))
            .when(OWNER, kick(BOB))
            .then(vec![kicked(BOB, OWNER)]);
    }

    #[test]
    fn an_admin_cannot_kick_another_admin() {
        given(history([
            busy_room(Visibility::Public),
            vec![joined(ADMIN2), promoted(ADMIN2, Role::Admin)],
        ]))
        .when(ADMIN, kick(ADMIN2))
        .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn the_owner_can_kick_an_admin() {
        given(busy_room(Visibility::Public))
            .when(OWNER, kick(ADMIN))
            .then(vec![kicked(ADMIN, OWNER)]);
    }

    #[test]
    fn nobody_can_kick_the_owner() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, kick(OWNER))
            .then_err(RoomError::CannotTargetOwner);
    }

    #[test]
    fn an_admin_cannot_kick_themself() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, kick(ADMIN))
            .then_err(RoomError::CannotTargetSelf);
    }

    #[test]
    fn the_owner_cannot_kick_themself() {
        given(busy_room(Visibility::Public))
            .when(OWNER, kick(OWNER))
            .then_err(RoomError::CannotTargetSelf);
    }

    #[test]
    fn a_non_member_cannot_be_kicked() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, kick(STRANGER))
            .then_err(RoomError::TargetNotMember);
    }

    #[test]
    fn a_kicked_user_is_no_longer_a_member() {
        let g = given(history([
            busy_room(Visibility::Public),
            vec![kicked(ALICE, ADMIN)],
        ]));
        assert!(!g.state().is_member(ALICE));
    }

    #[test]
    fn a_kicked_user_can_rejoin_a_public_room() {
        given(history([
            busy_room(Visibility::Public),
            vec![kicked(ALICE, ADMIN)],
        ]))
        .when(ALICE, RoomCommand::Join)
        .then(vec![joined(ALICE)]);
    }

    #[test]
    fn a_kicked_user_cannot_rejoin_a_private_room_without_a_new_invite() {
        given(history([
            private_room(),
            vec![invited(ALICE, OWNER), joined(ALICE), kicked(ALICE, OWNER)],
        ]))
        .when(ALICE, RoomCommand::Join)
        .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_kicked_user_can_rejoin_a_private_room_with_a_new_invite() {
        given(history([
            private_room(),
            vec![
                invited(ALICE, OWNER),
                joined(ALICE),
                kicked(ALICE, OWNER),
                invited(ALICE, OWNER),
            ],
        ]))
        .when(ALICE, RoomCommand::Join)
        .then(vec![joined(ALICE)]);
    }

    #[test]
    fn a_kicked_user_cannot_send() {
        given(history([
            busy_room(Visibility::Public),
            vec![kicked(ALICE, ADMIN)],
        ]))
        .when(ALICE, send(M1))
        .then_err(RoomError::NotMember);
    }
}

mod banning {
    use super::*;

    #[test]
    fn the_owner_bans_a_member_which_removes_them_as_a_kick_does() {
        let g = given(busy_room(Visibility::Public));
        let events = g.when(OWNER, ban(ALICE)).events();
        assert_eq!(events, vec![banned(ALICE, OWNER, false)]);
        let after = given(history([busy_room(Visibility::Public), events]));
        assert!(!after.state().is_member(ALICE));
        assert!(after.state().is_banned(ALICE));
    }

    #[test]
    fn an_admin_bans_a_member() {
        given(busy_room(Visibility::Private))
            .when(ADMIN, ban(BOB))
            .then(vec![banned(BOB, ADMIN, false)]);
    }

    #[test]
    fn a_non_member_can_be_banned_before_they_come() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, ban(STRANGER))
            .then(vec![banned(STRANGER, ADMIN, false)]);
    }

    #[test]
    fn a_member_cannot_ban() {
        given(busy_room(Visibility::Public))
            .when(ALICE, ban(BOB))
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn a_non_member_cannot_ban() {
        given(busy_room(Visibility::Public))
            .when(STRANGER, ban(BOB))
            .then_err(RoomError::NotMember);
        given(busy_room(Visibility::Private))
            .when(STRANGER, ban(BOB))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn an_admin_cannot_ban_another_admin_but_the_owner_can() {
        let room = history([
            busy_room(Visibility::Public),
            vec![joined(ADMIN2), promoted(ADMIN2, Role::Admin)],
        ]);
        given(room.clone())
            .when(ADMIN, ban(ADMIN2))
            .then_err(RoomError::NotPermitted);
        given(room)
            .when(OWNER, ban(ADMIN2))
            .then(vec![banned(ADMIN2, OWNER, false)]);
    }

    #[test]
    fn nobody_bans_the_owner_or_themself() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, ban(OWNER))
            .then_err(RoomError::CannotTargetOwner);
        given(busy_room(Visibility::Public))
            .when(ADMIN, ban(ADMIN))
            .then_err(RoomError::CannotTargetSelf);
    }

    #[test]
    fn nobody_bans_in_a_direct_room() {
        given(direct_room())
            .when(ALICE, ban(BOB))
            .then_err(RoomError::DirectRoom);
    }

    #[test]
    fn banning_someone_banned_changes_nothing() {
        given(history([
            busy_room(Visibility::Public),
            vec![banned(ALICE, ADMIN, false)],
        ]))
        .when(OWNER, ban(ALICE))
        .then_nothing();
    }

    #[test]
    fn a_banned_user_cannot_rejoin_a_public_room() {
        given(history([
            busy_room(Visibility::Public),
            vec![banned(ALICE, ADMIN, false)],
        ]))
        .when(ALICE, RoomCommand::Join)
        .then_err(RoomError::Banned);
    }

    #[test]
    fn a_banned_user_of_a_private_room_learns_nothing_of_it() {
        given(history([
            private_room(),
            vec![
                invited(ALICE, OWNER),
                joined(ALICE),
                banned(ALICE, OWNER, false),
            ],
        ]))
        .when(ALICE, RoomCommand::Join)
        .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_banned_user_cannot_be_invited() {
        given(history([
            busy_room(Visibility::Private),
            vec![banned(STRANGER, ADMIN, false)],
        ]))
        .when(OWNER, invite(STRANGER))
        .then_err(RoomError::TargetBanned);
    }

    #[test]
    fn a_ban_withdraws_a_pending_invitation() {
        let g = given(history([
            busy_room(Visibility::Private),
            vec![invited(STRANGER, OWNER), banned(STRANGER, ADMIN, false)],
        ]));
        assert!(!g.state().invited.contains(&STRANGER));
        g.when(STRANGER, RoomCommand::Join)
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_banned_user_cannot_send() {
        given(history([
            busy_room(Visibility::Public),
            vec![banned(ALICE, ADMIN, false)],
        ]))
        .when(ALICE, send(M1))
        .then_err(RoomError::NotMember);
    }

    #[test]
    fn a_moderator_unbans_and_the_user_may_join_again() {
        let room = history([
            busy_room(Visibility::Public),
            vec![banned(ALICE, OWNER, false)],
        ]);
        given(room.clone())
            .when(ADMIN, unban(ALICE))
            .then(vec![unbanned(ALICE, ADMIN, false)]);
        given(history([room, vec![unbanned(ALICE, ADMIN, false)]]))
            .when(ALICE, RoomCommand::Join)
            .then(vec![joined(ALICE)]);
    }

    #[test]
    fn a_member_cannot_unban_and_unbanning_someone_not_banned_changes_nothing() {
        let room = history([
            busy_room(Visibility::Public),
            vec![banned(STRANGER, OWNER, false)],
        ]);
        given(room.clone())
            .when(ALICE, unban(STRANGER))
            .then_err(RoomError::NotPermitted);
        given(room).when(OWNER, unban(BOB)).then_nothing();
    }
}

mod server_administrators {
    use super::*;
    use events::room::AdminCommand;

    fn admin_role(user_id: events::ids::UserId, role: Role) -> RoomCommand {
        as_admin(AdminCommand::ChangeRole { user_id, role })
    }

    fn admin_ban(user_id: events::ids::UserId) -> RoomCommand {
        as_admin(AdminCommand::Ban { user_id })
    }

    #[test]
    fn a_server_administrator_changes_a_role_in_a_room_they_are_not_in() {
        given(busy_room(Visibility::Private))
            .when(SERVER_ADMIN, admin_role(ALICE, Role::Admin))
            .then(vec![RoomEvent::MemberRoleChanged {
                user_id: ALICE,
                role: Role::Admin,
                changed_by: SERVER_ADMIN,
                as_admin: true,
            }]);
    }

    #[test]
    fn a_server_administrator_cannot_grant_or_take_ownership() {
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_role(ALICE, Role::Owner))
            .then_err(RoomError::CannotGrantOwner);
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_role(OWNER, Role::Member))
            .then_err(RoomError::CannotTargetOwner);
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_role(STRANGER, Role::Admin))
            .then_err(RoomError::TargetNotMember);
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_role(ADMIN, Role::Admin))
            .then_nothing();
    }

    #[test]
    fn a_server_administrator_deletes_any_message() {
        given(history([
            busy_room(Visibility::Private),
            vec![sent(M1, 1, ALICE)],
        ]))
        .when(SERVER_ADMIN, admin_delete(M1))
        .then(vec![RoomEvent::MessageDeleted {
            message_id: M1,
            seq: 1,
            deleted_by: SERVER_ADMIN,
            as_admin: true,
        }]);
        given(history([
            busy_room(Visibility::Public),
            vec![sent(M1, 1, ALICE), deleted(M1, 1, ALICE)],
        ]))
        .when(SERVER_ADMIN, admin_delete(M1))
        .then_err(RoomError::MessageDeleted);
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_delete(UNKNOWN_MESSAGE))
            .then_err(RoomError::MessageNotFound);
    }

    #[test]
    fn a_server_administrator_bans_anyone_but_the_owner_and_unbans() {
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_ban(ADMIN))
            .then(vec![banned(ADMIN, SERVER_ADMIN, true)]);
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_ban(OWNER))
            .then_err(RoomError::CannotTargetOwner);
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, admin_ban(SERVER_ADMIN))
            .then_err(RoomError::CannotTargetSelf);
        given(history([
            busy_room(Visibility::Public),
            vec![banned(BOB, OWNER, false)],
        ]))
        .when(SERVER_ADMIN, as_admin(AdminCommand::Unban { user_id: BOB }))
        .then(vec![unbanned(BOB, SERVER_ADMIN, true)]);
    }

    #[test]
    fn a_server_administrator_acts_in_group_rooms_only() {
        given(direct_room())
            .when(SERVER_ADMIN, admin_delete(M1))
            .then_err(RoomError::DirectRoom);
        given(vec![])
            .when(SERVER_ADMIN, admin_ban(ALICE))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn the_same_commands_without_the_authority_are_refused_to_an_outsider() {
        given(history([
            busy_room(Visibility::Private),
            vec![sent(M1, 1, ALICE)],
        ]))
        .when(SERVER_ADMIN, delete(M1))
        .then_err(RoomError::NotFound);
        given(busy_room(Visibility::Public))
            .when(SERVER_ADMIN, ban(ALICE))
            .then_err(RoomError::NotMember);
    }
}

mod roles {
    use super::*;

    #[test]
    fn the_owner_can_make_a_member_an_admin() {
        given(busy_room(Visibility::Public))
            .when(OWNER, change_role(ALICE, Role::Admin))
            .then(vec![promoted(ALICE, Role::Admin)]);
    }

    #[test]
    fn the_owner_can_make_an_admin_a_member_again() {
        given(busy_room(Visibility::Public))
            .when(OWNER, change_role(ADMIN, Role::Member))
            .then(vec![promoted(ADMIN, Role::Member)]);
    }

    #[test]
    fn an_admin_cannot_change_roles() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, change_role(ALICE, Role::Admin))
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn a_member_cannot_change_roles() {
        given(busy_room(Visibility::Public))
            .when(ALICE, change_role(BOB, Role::Admin))
            .then_err(RoomError::NotPermitted);
    }

    #[test]
    fn the_owner_role_cannot_be_given() {
        given(busy_room(Visibility::Public))
            .when(OWNER, change_role(ADMIN, Role::Owner))
            .then_err(RoomError::CannotGrantOwner);
    }

    #[test]
    fn the_owner_cannot_demote_themself() {
        given(busy_room(Visibility::Public))
            .when(OWNER, change_role(OWNER, Role::Member))
            .then_err(RoomError::CannotTargetOwner);
    }

    #[test]
    fn a_non_member_cannot_be_given_a_role() {
        given(busy_room(Visibility::Public))
            .when(OWNER, change_role(STRANGER, Role::Admin))
            .then_err(RoomError::TargetNotMember);
    }

    #[test]
    fn giving_a_member_the_role_they_have_changes_nothing() {
        given(busy_room(Visibility::Public))
            .when(OWNER, change_role(ADMIN, Role::Admin))
            .then_nothing();
        given(busy_room(Visibility::Public))
            .when(OWNER, change_role(ALICE, Role::Member))
            .then_nothing();
    }

    #[test]
    fn a_demoted_admin_can_no_longer_kick() {
        given(history([
            busy_room(Visibility::Public),
            vec![promoted(ADMIN, Role::Member)],
        ]))
        .when(ADMIN, kick(ALICE))
        .then_err(RoomError::NotPermitted);
    }
}

mod sending {
    use super::*;

    #[test]
    fn the_first_message_of_a_room_has_seq_1() {
        given(busy_room(Visibility::Public))
            .when(ALICE, send(M1))
            .then(vec![sent(M1, 1, ALICE)]);
    }

    #[test]
    fn message_seqs_increment_1_2_3() {
        let mut h = busy_room(Visibility::Public);
        for (seq, (id, who)) in [(M1, ALICE), (M2, BOB), (M3, OWNER)]
            .into_iter()
            .enumerate()
        {
            let events = given(h.clone()).when(who, send(id)).events();
            assert_eq!(events, vec![sent(id, seq as u64 + 1, who)]);
            h.extend(events);
        }
        assert_eq!(given(h).state().last_seq, 3);
    }

    #[test]
    fn seqs_keep_counting_past_deleted_messages() {
        given(history([
            busy_room(Visibility::Public),
            vec![sent(M1, 1, ALICE), deleted(M1, 1, ALICE)],
        ]))
        .when(BOB, send(M2))
        .then(vec![sent(M2, 2, BOB)]);
    }

    #[test]
    fn the_client_message_id_and_body_are_carried_into_the_event() {
        given(busy_room(Visibility::Public))
            .when(
                ALICE,
                RoomCommand::SendMessage {
                    attachments: Vec::new(),
                    message_id: M1,
                    body: body("hi there"),
                    reply_to: None,
                    client_msg_id: Some("c-1".into()),
                    mentions: Vec::new(),
                    mention_room: false,
                },
            )
            .then(vec![RoomEvent::MessageSent {
                attachments: Vec::new(),
                message_id: M1,
                seq: 1,
                sender_id: ALICE,
                body: body("hi there"),
                reply_to: None,
                client_msg_id: Some("c-1".into()),
                mentions: Vec::new(),
                mentions_room: false,
            }]);
    }

    #[test]
    fn a_non_member_of_a_public_room_cannot_send() {
        given(busy_room(Visibility::Public))
            .when(STRANGER, send(M1))
            .then_err(RoomError::NotMember);
    }

    #[test]
    fn a_non_member_of_a_private_room_cannot_send_and_does_not_learn_it_exists() {
        given(busy_room(Visibility::Private))
            .when(STRANGER, send(M1))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn an_invited_user_cannot_send_before_joining() {
        given(history([private_room(), vec![invited(ALICE, OWNER)]]))
            .when(ALICE, send(M1))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_user_who_left_cannot_send() {
        given(history([busy_room(Visibility::Public), vec![left(ALICE)]]))
            .when(ALICE, send(M1))
            .then_err(RoomError::NotMember);
    }

    #[test]
    fn a_reply_to_a_message_of_the_room_is_sent() {
        given(history([
            busy_room(Visibility::Public),
            vec![sent(M1, 1, ALICE)],
        ]))
        .when(BOB, send_reply(M2, M1))
        .then(vec![RoomEvent::MessageSent {
            attachments: Vec::new(),
            message_id: M2,
            seq: 2,
            sender_id: BOB,
            body: body("hello"),
            reply_to: Some(M1),
            client_msg_id: None,
            mentions: Vec::new(),
            mentions_room: false,
        }]);
    }

    #[test]
    fn a_reply_to_an_unknown_message_is_refused() {
        given(history([
            busy_room(Visibility::Public),
            vec![sent(M1, 1, ALICE)],
        ]))
        .when(BOB, send_reply(M2, UNKNOWN_MESSAGE))
        .then_err(RoomError::ReplyTargetNotFound);
    }
}

mod editing_and_deleting {
    use super::*;

    fn with_alices_message() -> Vec<RoomEvent> {
        history([busy_room(Visibility::Public), vec![sent(M1, 1, ALICE)]])
    }

    #[test]
    fn the_author_can_edit_their_message() {
        given(with_alices_message())
            .when(ALICE, edit(M1))
            .then(vec![edited(M1, 1, 1, ALICE)]);
    }

    #[test]
    fn edit_numbers_increment() {
        given(history([
            with_alices_message(),
            vec![edited(M1, 1, 1, ALICE), edited(M1, 1, 2, ALICE)],
        ]))
        .when(ALICE, edit(M1))
        .then(vec![edited(M1, 1, 3, ALICE)]);
    }

    #[test]
    fn an_edit_carries_the_seq_of_the_message_not_a_new_one() {
        given(history([
            with_alices_message(),
            vec![sent(M2, 2, BOB), sent(M3, 3, BOB)],
        ]))
        .when(ALICE, edit(M1))
        .then(vec![edited(M1, 1, 1, ALICE)]);
    }

    #[test]
    fn another_member_cannot_edit_the_message() {
        given(with_alices_message())
            .when(BOB, edit(M1))
            .then_err(RoomError::NotAuthor);
    }

    #[test]
    fn an_admin_can_edit_a_message_in_a_group_room() {
        given(with_alices_message())
            .when(ADMIN, edit(M1))
            .then(vec![edited(M1, 1, 1, ADMIN)]);
    }

    #[test]
    fn the_author_can_delete_their_message() {
        given(with_alices_message())
            .when(ALICE, delete(M1))
            .then(vec![deleted(M1, 1, ALICE)]);
    }

    #[test]
    fn another_member_cannot_delete_the_message() {
        given(with_alices_message())
            .when(BOB, delete(M1))
            .then_err(RoomError::NotAuthor);
    }

    #[test]
    fn an_admin_can_delete_a_message_in_a_group_room() {
        given(with_alices_message())
            .when(ADMIN, delete(M1))
            .then(vec![deleted(M1, 1, ADMIN)]);
    }

    #[test]
    fn the_owner_can_delete_a_message_in_a_group_room() {
        given(with_alices_message())
            .when(OWNER, delete(M1))
            .then(vec![deleted(M1, 1, OWNER)]);
    }

    #[test]
    fn a_deleted_message_cannot_be_edited() {
        given(history([
            with_alices_message(),
            vec![deleted(M1, 1, ALICE)],
        ]))
        .when(ALICE, edit(M1))
        .then_err(RoomError::MessageDeleted);
    }

    #[test]
    fn a_deleted_message_cannot_be_deleted_again() {
        given(history([
            with_alices_message(),
            vec![deleted(M1, 1, ADMIN)],
        ]))
        .when(ALICE, delete(M1))
        .then_err(RoomError::MessageDeleted);
    }

    #[test]
    fn an_unknown_message_cannot_be_edited() {
        given(with_alices_message())
            .when(ALICE, edit(UNKNOWN_MESSAGE))
            .then_err(RoomError::MessageNotFound);
    }

    #[test]
    fn an_unknown_message_cannot_be_deleted() {
        given(with_alices_message())
            .when(ALICE, delete(UNKNOWN_MESSAGE))
            .then_err(RoomError::MessageNotFound);
    }

    #[test]
    fn an_author_who_left_cannot_edit_their_message() {
        given(history([with_alices_message(), vec![left(ALICE)]]))
            .when(ALICE, edit(M1))
            .then_err(RoomError::NotMember);
    }
}

mod reactions {
    use super::*;

    fn with_a_message() -> Vec<RoomEvent> {
        history([busy_room(Visibility::Public), vec![sent(M1, 1, ALICE)]])
    }

    /// `n` distinct emoji: "e0" .. "e{n-1}".
    fn reactions_of(user: events::ids::UserId, n: usize) -> Vec<RoomEvent> {
        (0..n)
            .map(|i| reacted(M1, 1, user, &format!("e{i}")))
            .collect()
    }

    #[test]
    fn a_member_can_react_to_a_message() {
        given(with_a_message())
            .when(BOB, react(M1, "👍"))
            .then(vec![reacted(M1, 1, BOB, "👍")]);
    }

    #[test]
    fn adding_the_same_reaction_again_changes_nothing() {
        given(history([with_a_message(), vec![reacted(M1, 1, BOB, "👍")]]))
            .when(BOB, react(M1, "👍"))
            .then_nothing();
    }

    #[test]
    fn two_users_can_add_the_same_reaction() {
        given(history([with_a_message(), vec![reacted(M1, 1, BOB, "👍")]]))
            .when(ALICE, react(M1, "👍"))
            .then(vec![reacted(M1, 1, ALICE, "👍")]);
    }

    #[test]
    fn the_twentieth_distinct_reaction_is_accepted() {
        given(history([with_a_message(), reactions_of(BOB, 19)]))
            .when(BOB, react(M1, "last"))
            .then(vec![reacted(M1, 1, BOB, "last")]);
    }

    #[test]
    fn the_twenty_first_distinct_reaction_is_refused() {
        assert_eq!(MAX_REACTIONS_PER_USER_PER_MESSAGE, 20);
        given(history([with_a_message(), reactions_of(BOB, 20)]))
            .when(BOB, react(M1, "one-too-many"))
            .then_err(RoomError::TooManyReactions);
    }

    #[test]
    fn at_the_limit_repeating_a_reaction_changes_nothing() {
        given(history([with_a_message(), reactions_of(BOB, 20)]))
            .when(BOB, react(M1, "e7"))
            .then_nothing();
    }

    #[test]
    fn the_reaction_limit_is_per_user() {
        given(history([with_a_message(), reactions_of(BOB, 20)]))
            .when(ALICE, react(M1, "e0"))
            .then(vec![reacted(M1, 1, ALICE, "e0")]);
    }

    #[test]
    fn removing_a_reaction_frees_a_slot() {
        given(history([
            with_a_message(),
            reactions_of(BOB, 20),
            vec![unreacted(M1, 1, BOB, "e3")],
        ]))
        .when(BOB, react(M1, "new"))
        .then(vec![reacted(M1, 1, BOB, "new")]);
    }

    #[test]
    fn a_member_can_remove_their_reaction() {
        given(history([with_a_message(), vec![reacted(M1, 1, BOB, "👍")]]))
            .when(BOB, unreact(M1, "👍"))
            .then(vec![unreacted(M1, 1, BOB, "👍")]);
    }

    #[test]
    fn removing_an_absent_reaction_changes_nothing() {
        given(with_a_message())
            .when(BOB, unreact(M1, "👍"))
            .then_nothing();
    }

    #[test]
    fn removing_someone_elses_reaction_changes_nothing() {
        given(history([
            with_a_message(),
            vec![reacted(M1, 1, ALICE, "👍")],
        ]))
        .when(BOB, unreact(M1, "👍"))
        .then_nothing();
    }

    #[test]
    fn a_deleted_message_cannot_get_reactions() {
        given(history([with_a_message(), vec![deleted(M1, 1, ALICE)]]))
            .when(BOB, react(M1, "👍"))
            .then_err(RoomError::MessageDeleted);
    }

    #[test]
    fn reactions_cannot_be_removed_from_a_deleted_message() {
        given(history([
            with_a_message(),
            vec![reacted(M1, 1, BOB, "👍"), deleted(M1, 1, ALICE)],
        ]))
        .when(BOB, unreact(M1, "👍"))
        .then_err(RoomError::MessageDeleted);
    }

    #[test]
    fn an_unknown_message_cannot_get_reactions() {
        given(with_a_message())
            .when(BOB, react(UNKNOWN_MESSAGE, "👍"))
            .then_err(RoomError::MessageNotFound);
        given(with_a_message())
            .when(BOB, unreact(UNKNOWN_MESSAGE, "👍"))
            .then_err(RoomError::MessageNotFound);
    }

    #[test]
    fn a_non_member_cannot_react() {
        given(with_a_message())
            .when(STRANGER, react(M1, "👍"))
            .then_err(RoomError::NotMember);
    }
}

mod read_markers {
    use super::*;

    fn with_three_messages() -> Vec<RoomEvent> {
        history([
            busy_room(Visibility::Public),
            vec![sent(M1, 1, ALICE), sent(M2, 2, ALICE), sent(M3, 3, ALICE)],
        ])
    }

    #[test]
    fn a_read_marker_moves_forward() {
        given(with_three_messages())
            .when(BOB, mark_read(2))
            .then(vec![read_up_to(BOB, 2)]);
    }

    #[test]
    fn a_read_marker_moves_forward_from_where_it_is() {
        given(history([with_three_messages(), vec![read_up_to(BOB, 1)]]))
            .when(BOB, mark_read(3))
            .then(vec![read_up_to(BOB, 3)]);
    }

    #[test]
    fn a_read_marker_never_moves_back() {
        given(history([with_three_messages(), vec![read_up_to(BOB, 3)]]))
            .when(BOB, mark_read(1))
            .then_nothing();
    }

    #[test]
    fn marking_the_same_seq_read_again_changes_nothing() {
        given(history([with_three_messages(), vec![read_up_to(BOB, 2)]]))
            .when(BOB, mark_read(2))
            .then_nothing();
    }

    #[test]
    fn marking_seq_0_read_changes_nothing() {
        given(with_three_messages())
            .when(BOB, mark_read(0))
            .then_nothing();
    }

    #[test]
    fn the_last_message_can_be_marked_read() {
        given(with_three_messages())
            .when(BOB, mark_read(3))
            .then(vec![read_up_to(BOB, 3)]);
    }

    #[test]
    fn a_read_marker_beyond_the_last_message_is_refused() {
        given(with_three_messages())
            .when(BOB, mark_read(4))
            .then_err(RoomError::ReadMarkerBeyondLastMessage);
    }

    #[test]
    fn read_markers_are_per_user() {
        given(history([with_three_messages(), vec![read_up_to(BOB, 3)]]))
            .when(ALICE, mark_read(1))
            .then(vec![read_up_to(ALICE, 1)]);
    }

    #[test]
    fn a_non_member_cannot_mark_read() {
        given(with_three_messages())
            .when(STRANGER, mark_read(1))
            .then_err(RoomError::NotMember);
    }
}

mod mentions_and_notifications {
    use super::*;
    use events::values::NotificationLevel;

    fn send_mentioning(users: Vec<events::ids::UserId>, room: bool) -> RoomCommand {
        RoomCommand::SendMessage {
            attachments: Vec::new(),
            message_id: M1,
            body: body("hello"),
            reply_to: None,
            client_msg_id: None,
            mentions: users,
            mention_room: room,
        }
    }

    fn sent_mentioning(
        sender: events::ids::UserId,
        users: Vec<events::ids::UserId>,
        room: bool,
    ) -> RoomEvent {
        RoomEvent::MessageSent {
            attachments: Vec::new(),
            message_id: M1,
            seq: 1,
            sender_id: sender,
            body: body("hello"),
            reply_to: None,
            client_msg_id: None,
            mentions: users,
            mentions_room: room,
        }
    }

    #[test]
    fn only_members_other_than_the_sender_are_mentioned_each_once() {
        given(busy_room(Visibility::Public))
            .when(
                ALICE,
                send_mentioning(vec![BOB, STRANGER, ALICE, BOB, ADMIN], false),
            )
            .then(vec![sent_mentioning(ALICE, vec![BOB, ADMIN], false)]);
    }

    #[test]
    fn someone_who_left_or_was_kicked_is_not_mentioned() {
        given(history([
            busy_room(Visibility::Public),
            vec![left(BOB), kicked(ADMIN, OWNER)],
        ]))
        .when(ALICE, send_mentioning(vec![BOB, ADMIN], false))
        .then(vec![sent_mentioning(ALICE, vec![], false)]);
    }

    #[test]
    fn at_room_mentions_everyone_only_from_an_owner_or_admin() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, send_mentioning(vec![], true))
            .then(vec![sent_mentioning(ADMIN, vec![], true)]);
        given(busy_room(Visibility::Public))
            .when(ALICE, send_mentioning(vec![], true))
            .then(vec![sent_mentioning(ALICE, vec![], false)]);
        given(direct_room())
            .when(ALICE, send_mentioning(vec![BOB], true))
            .then(vec![sent_mentioning(ALICE, vec![BOB], false)]);
    }

    #[test]
    fn a_member_sets_their_notification_level_and_setting_it_again_is_a_no_op() {
        let set = |level| RoomCommand::SetNotificationLevel { level };
        let changed = |level| RoomEvent::NotificationLevelChanged {
            user_id: BOB,
            level,
        };
        given(busy_room(Visibility::Public))
            .when(BOB, set(NotificationLevel::All))
            .then(vec![changed(NotificationLevel::All)]);
        // Mentions is a group room's default, every message a direct room's.
        given(busy_room(Visibility::Public))
            .when(BOB, set(NotificationLevel::Mentions))
            .then_nothing();
        given(direct_room())
            .when(BOB, set(NotificationLevel::All))
            .then_nothing();
        given(history([
            busy_room(Visibility::Public),
            vec![changed(NotificationLevel::None)],
        ]))
        .when(BOB, set(NotificationLevel::None))
        .then_nothing();
        given(busy_room(Visibility::Private))
            .when(STRANGER, set(NotificationLevel::None))
            .then_err(RoomError::NotFound);
    }

    #[test]
    fn a_level_is_forgotten_when_its_member_leaves() {
        given(history([
            busy_room(Visibility::Public),
            vec![
                RoomEvent::NotificationLevelChanged {
                    user_id: BOB,
                    level: NotificationLevel::None,
                },
                left(BOB),
                joined(BOB),
            ],
        ]))
        .when(
            BOB,
            RoomCommand::SetNotificationLevel {
                level: NotificationLevel::Mentions,
            },
        )
        .then_nothing();
    }

    #[test]
    fn a_private_read_marker_says_so_in_its_event() {
        given(history([
            busy_room(Visibility::Public),
            vec![sent(M1, 1, ALICE)],
        ]))
        .when(
            BOB,
            RoomCommand::MarkRead {
                seq: 1,
                private: true,
            },
        )
        .then(vec![RoomEvent::ReadMarkerMoved {
            user_id: BOB,
            seq: 1,
            private: true,
        }]);
    }
}

mod retention {
    use super::*;
    use events::retention::RetentionDays;

    fn days(n: u32) -> Option<RetentionDays> {
        Some(RetentionDays::parse(n).unwrap())
    }

    fn retention(n: Option<RetentionDays>) -> RoomCommand {
        RoomCommand::ChangeRetention { days: n }
    }

    fn expire(up_to_seq: u64) -> RoomCommand {
        RoomCommand::ExpireMessages { up_to_seq }
    }

    /// Three messages by ALICE (seq 1–3), the first two expired.
    fn expired_room() -> Vec<RoomEvent> {
        history([
            busy_room(Visibility::Public),
            vec![
                sent(M1, 1, ALICE),
                sent(M2, 2, ALICE),
                sent(M3, 3, ALICE),
                RoomEvent::MessagesExpired { up_to_seq: 2 },
            ],
        ])
    }

    #[test]
    fn owners_and_admins_set_a_rooms_retention_and_members_may_not() {
        given(busy_room(Visibility::Public))
            .when(ADMIN, retention(days(30)))
            .then(vec![RoomEvent::RoomRetentionChanged {
                days: days(30),
                changed_by: ADMIN,
            }]);
        given(busy_room(Visibility::Public))
            .when(ALICE, retention(days(30)))
            .then_err(RoomError::NotPermitted);
        given(busy_room(Visibility::Private))
            .when(STRANGER, retention(days(30)))
            .then_err(RoomError::NotFound);
        given(direct_room())
            .when(ALICE, retention(days(30)))
            .then_err(RoomError::DirectRoom);
    }

    #[test]
    fn the_same_period_again_changes_nothing_and_none_means_the_servers_default() {
        let room = history([
            busy_room(Visibility::Public),
            vec![RoomEvent::RoomRetentionChanged {
                days: days(7),
                changed_by: OWNER,
            }],
        ]);
        assert_eq!(given(room.clone()).state().retention_days, days(7));
        given(room.clone())
            .when(OWNER, retention(days(7)))
            .then_nothing();
        given(room)
            .when(OWNER, retention(None))
            .then(vec![RoomEvent::RoomRetentionChanged {
                days: None,
                changed_by: OWNER,
            }]);
    }

    #[test]
    fn expiring_goes_no_further_than_the_last_message_and_never_back() {
        let three = history([
            busy_room(Visibility::Public),
            vec![sent(M1, 1, ALICE), sent(M2, 2, ALICE), sent(M3, 3, ALICE)],
        ]);
        given(three)
            .when(OWNER, expire(10))
            .then(vec![RoomEvent::MessagesExpired { up_to_seq: 3 }]);
        given(expired_room()).when(OWNER, expire(2)).then_nothing();
        given(expired_room()).when(OWNER, expire(1)).then_nothing();
        given(busy_room(Visibility::Public))
            .when(OWNER, expire(5))
            .then_nothing();
        given(expired_room())
            .when(OWNER, expire(3))
            .then(vec![RoomEvent::MessagesExpired { up_to_seq: 3 }]);
    }

    #[test]
    fn an_expired_message_cannot_be_edited_deleted_reacted_to_or_replied_to() {
        for cmd in [edit(M2), delete(M2), react(M1, "👍"), unreact(M1, "👍")] {
            given(expired_room())
                .when(ALICE, cmd)
                .then_err(RoomError::MessageNotFound);
        }
        given(expired_room())
            .when(ALICE, send_reply(UNKNOWN_MESSAGE, M1))
            .then_err(RoomError::ReplyTargetNotFound);
        // The newest message is not expired.
        given(expired_room())
            .when(ALICE, react(M3, "👍"))
            .then(vec![reacted(M3, 3, ALICE, "👍")]);
        // New messages follow the room's last seq as before.
        let g = given(expired_room());
        assert_eq!(g.state().expired_up_to, 2);
        assert_eq!(g.state().last_seq, 3);
    }

    #[test]
    fn a_trimmed_state_does_not_learn_an_expired_message_back() {
        let mut state = given(expired_room()).state().clone();
        state.trim_messages(0);
        assert!(state.lacks_message(M1));
        let m1_events = [sent(M1, 1, ALICE), reacted(M1, 1, BOB, "👍")];
        state.learn_message(m1_events.iter());
        assert_eq!(
            events::room::decide(&state, ALICE, edit(M1)),
            Err(RoomError::MessageNotFound)
        );
    }
}
