//! A tiny given/when/then harness for the room decider, plus named people,
//! fixed ids and event/command builders so tests read as sentences.
//!
//! ```ignore
//! given(public_room())
//!     .when(ALICE, RoomCommand::Join)
//!     .then(vec![joined(ALICE)]);
//! ```
#![allow(dead_code, clippy::unwrap_used)]

use events::ids::{MessageId, RoomId, UserId};
use events::room::{self, AdminCommand, RoomCommand, RoomError, RoomEvent, RoomState};
use events::values::{Emoji, MessageBody, Role, RoomName, Topic, Visibility};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// The history of a room, folded with `room::evolve`.
pub struct Given {
    state: RoomState,
}

/// The outcome of one command on that history.
pub struct When {
    actor: UserId,
    cmd: RoomCommand,
    result: Result<Vec<RoomEvent>, RoomError>,
}

/// Starts a scenario from a room's past events (empty: the room does not exist).
pub fn given(events: Vec<RoomEvent>) -> Given {
    Given {
        state: events.iter().fold(RoomState::default(), room::evolve),
    }
}

impl Given {
    /// `actor` issues `cmd`.
    pub fn when(self, actor: UserId, cmd: RoomCommand) -> When {
        let result = room::decide(&self.state, actor, cmd.clone());
        When { actor, cmd, result }
    }

    /// The folded state, for the rare test that checks `evolve` directly.
    pub fn state(&self) -> &RoomState {
        &self.state
    }
}

impl When {
    /// The command was accepted and produced exactly `expected`.
    #[track_caller]
    pub fn then(self, expected: Vec<RoomEvent>) {
        match self.result {
            Ok(actual) => assert_eq!(
                actual, expected,
                "\n{:?} by {:?} decided other events than expected",
                self.cmd, self.actor
            ),
            Err(e) => panic!(
                "\n{:?} by {:?} was refused with {e:?}; expected events {expected:#?}",
                self.cmd, self.actor
            ),
        }
    }

    /// The command was refused with `expected`.
    #[track_caller]
    pub fn then_err(self, expected: RoomError) {
        match self.result {
            Err(actual) => assert_eq!(
                actual, expected,
                "\n{:?} by {:?} was refused for another reason",
                self.cmd, self.actor
            ),
            Ok(events) => panic!(
                "\n{:?} by {:?} was accepted with {events:#?}; expected error {expected:?}",
                self.cmd, self.actor
            ),
        }
    }

    /// The command was accepted and changed nothing (`Ok(vec![])`): "already so".
    #[track_caller]
    pub fn then_nothing(self) {
        self.then(vec![]);
    }

    /// The events decided, for tests that chain a second command on top.
    #[track_caller]
    pub fn events(self) -> Vec<RoomEvent> {
        match self.result {
            Ok(events) => events,
            Err(e) => panic!(
                "\n{:?} by {:?} was refused with {e:?}",
                self.cmd, self.actor
            ),
        }
    }
}

/// Concatenates pieces of history: `history([public_room(), vec![joined(ALICE)]])`.
pub fn history<const N: usize>(parts: [Vec<RoomEvent>; N]) -> Vec<RoomEvent> {
    parts.concat()
}

// ---------------------------------------------------------------------------
// Fixed ids and people
// ---------------------------------------------------------------------------

const fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(0x1000 + n))
}

const fn message(n: u128) -> MessageId {
    MessageId(Uuid::from_u128(0x2000 + n))
}

/// The room every scenario plays in.
pub const ROOM: RoomId = RoomId(Uuid::from_u128(0x3000));

/// Creates the group room: its owner.
pub const OWNER: UserId = user(1);
/// Promoted to admin by the owner.
pub const ADMIN: UserId = user(2);
/// A second admin.
pub const ADMIN2: UserId = user(3);
/// An ordinary member.
pub const ALICE: UserId = user(4);
/// Another ordinary member.
pub const BOB: UserId = user(5);
/// Never a member of anything.
pub const STRANGER: UserId = user(6);
/// A server administrator, member of no room.
pub const SERVER_ADMIN: UserId = user(7);

pub const M1: MessageId = message(1);
pub const M2: MessageId = message(2);
pub const M3: MessageId = message(3);
pub const UNKNOWN_MESSAGE: MessageId = message(99);

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

pub fn name(s: &str) -> RoomName {
    RoomName::parse(s).unwrap()
}

pub fn topic(s: &str) -> Topic {
    Topic::parse(s).unwrap()
}

pub fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).unwrap()
}

pub fn emoji(s: &str) -> Emoji {
    Emoji::parse(s).unwrap()
}

// ---------------------------------------------------------------------------
// Histories
// ---------------------------------------------------------------------------

/// A group room of `OWNER`, as `Create` decides it.
pub fn group_room(visibility: Visibility) -> Vec<RoomEvent> {
    vec![
        RoomEvent::RoomCreated {
            room_id: ROOM,
            name: name("general"),
            topic: topic("chat"),
            visibility,
            created_by: OWNER,
        },
        joined_as(OWNER, Role::Owner),
    ]
}

pub fn public_room() -> Vec<RoomEvent> {
    group_room(Visibility::Public)
}

pub fn private_room() -> Vec<RoomEvent> {
    group_room(Visibility::Private)
}

/// A public room with `ADMIN` (admin), `ALICE` and `BOB` (members).
pub fn busy_room(visibility: Visibility) -> Vec<RoomEvent> {
    history([
        group_room(visibility),
        vec![
            joined(ADMIN),
            promoted(ADMIN, Role::Admin),
            joined(ALICE),
            joined(BOB),
        ],
    ])
}

/// The direct room of `ALICE` and `BOB`, as `OpenDirect` by `ALICE` decides it.
pub fn direct_room() -> Vec<RoomEvent> {
    vec![
        RoomEvent::DirectRoomOpened {
            room_id: ROOM,
            user_ids: [ALICE, BOB],
            opened_by: ALICE,
        },
        joined(ALICE),
        joined(BOB),
    ]
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

pub fn joined(user_id: UserId) -> RoomEvent {
    joined_as(user_id, Role::Member)
}

pub fn joined_as(user_id: UserId, role: Role) -> RoomEvent {
    RoomEvent::MemberJoined { user_id, role }
}

pub fn promoted(user_id: UserId, role: Role) -> RoomEvent {
    RoomEvent::MemberRoleChanged {
        user_id,
        role,
        changed_by: OWNER,
        as_admin: false,
    }
}

/// Banned by a room moderator (`as_admin` false) or a server administrator.
pub fn banned(user_id: UserId, banned_by: UserId, as_admin: bool) -> RoomEvent {
    RoomEvent::MemberBanned {
        user_id,
        banned_by,
        as_admin,
    }
}

pub fn unbanned(user_id: UserId, unbanned_by: UserId, as_admin: bool) -> RoomEvent {
    RoomEvent::MemberUnbanned {
        user_id,
        unbanned_by,
        as_admin,
    }
}

pub fn invited(user_id: UserId, invited_by: UserId) -> RoomEvent {
    RoomEvent::MemberInvited {
        user_id,
        invited_by,
    }
}

pub fn left(user_id: UserId) -> RoomEvent {
    RoomEvent::MemberLeft { user_id }
}

pub fn kicked(user_id: UserId, kicked_by: UserId) -> RoomEvent {
    RoomEvent::MemberKicked { user_id, kicked_by }
}

pub fn sent(message_id: MessageId, seq: u64, sender_id: UserId) -> RoomEvent {
    RoomEvent::MessageSent {
        attachments: Vec::new(),
        message_id,
        seq,
        sender_id,
        body: body("hello"),
        reply_to: None,
        client_msg_id: None,
        mentions: Vec::new(),
        mentions_room: false,
    }
}

pub fn edited(message_id: MessageId, seq: u64, edit_number: u32, edited_by: UserId) -> RoomEvent {
    RoomEvent::MessageEdited {
        message_id,
        seq,
        body: body("edited"),
        edit_number,
        edited_by,
    }
}

pub fn deleted(message_id: MessageId, seq: u64, deleted_by: UserId) -> RoomEvent {
    RoomEvent::MessageDeleted {
        message_id,
        seq,
        deleted_by,
        as_admin: false,
    }
}

pub fn reacted(message_id: MessageId, seq: u64, user_id: UserId, e: &str) -> RoomEvent {
    RoomEvent::ReactionAdded {
        message_id,
        seq,
        user_id,
        emoji: emoji(e),
    }
}

pub fn unreacted(message_id: MessageId, seq: u64, user_id: UserId, e: &str) -> RoomEvent {
    RoomEvent::ReactionRemoved {
        message_id,
        seq,
        user_id,
        emoji: emoji(e),
    }
}

pub fn read_up_to(user_id: UserId, seq: u64) -> RoomEvent {
    RoomEvent::ReadMarkerMoved {
        user_id,
        seq,
        private: false,
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

pub fn create(visibility: Visibility) -> RoomCommand {
    RoomCommand::Create {
        room_id: ROOM,
        name: name("general"),
        topic: topic("chat"),
        visibility,
    }
}

pub fn open_direct(with: UserId) -> RoomCommand {
    RoomCommand::OpenDirect {
        room_id: ROOM,
        with,
    }
}

pub fn send(message_id: MessageId) -> RoomCommand {
    RoomCommand::SendMessage {
        attachments: Vec::new(),
        message_id,
        body: body("hello"),
        reply_to: None,
        client_msg_id: None,
        mentions: Vec::new(),
        mention_room: false,
    }
}

pub fn send_reply(message_id: MessageId, reply_to: MessageId) -> RoomCommand {
    RoomCommand::SendMessage {
        attachments: Vec::new(),
        message_id,
        body: body("hello"),
        reply_to: Some(reply_to),
        client_msg_id: None,
        mentions: Vec::new(),
        mention_room: false,
    }
}

pub fn edit(message_id: MessageId) -> RoomCommand {
    RoomCommand::EditMessage {
        message_id,
        body: body("edited"),
    }
}

pub fn delete(message_id: MessageId) -> RoomCommand {
    RoomCommand::DeleteMessage { message_id }
}

pub fn react(message_id: MessageId, e: &str) -> RoomCommand {
    RoomCommand::AddReaction {
        message_id,
        emoji: emoji(e),
    }
}

pub fn unreact(message_id: MessageId, e: &str) -> RoomCommand {
    RoomCommand::RemoveReaction {
        message_id,
        emoji: emoji(e),
    }
}

pub fn invite(user_id: UserId) -> RoomCommand {
    RoomCommand::Invite { user_id }
}

pub fn kick(user_id: UserId) -> RoomCommand {
    RoomCommand::Kick { user_id }
}

pub fn change_role(user_id: UserId, role: Role) -> RoomCommand {
    RoomCommand::ChangeRole { user_id, role }
}

pub fn ban(user_id: UserId) -> RoomCommand {
    RoomCommand::Ban { user_id }
}

pub fn unban(user_id: UserId) -> RoomCommand {
    RoomCommand::Unban { user_id }
}

/// The same commands with a server administrator's authority.
pub fn as_admin(cmd: AdminCommand) -> RoomCommand {
    RoomCommand::AsServerAdmin(cmd)
}

pub fn admin_delete(message_id: MessageId) -> RoomCommand {
    as_admin(AdminCommand::DeleteMessage { message_id })
}

pub fn mark_read(seq: u64) -> RoomCommand {
    RoomCommand::MarkRead {
        seq,
        private: false,
    }
}
