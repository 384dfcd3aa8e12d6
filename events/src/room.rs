//! The room aggregate: a group room or a direct room, its members, and the
//! messages, reactions and read markers inside it. Every event of a room lives in
//! one `room-<id>` stream, so a room's `version` orders everything a client sees.

use crate::attachment::Attachment;
use crate::ids::{MessageId, RoomId, UserId};
use crate::retention::RetentionDays;
pub use crate::room_admin::AdminCommand;
use crate::stored::StoredEvent;
use crate::values::{Emoji, MessageBody, NotificationLevel, Role, RoomName, Topic, Visibility};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// Most distinct reactions one user may put on one message.
pub const MAX_REACTIONS_PER_USER_PER_MESSAGE: usize = 20;

/// Events of a `room-<id>` stream, named in the past tense. They carry what
/// projectors need (a message's `seq`, an edit's number) so nothing is recomputed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum RoomEvent {
    #[serde(rename = "RoomCreated")]
    RoomCreated {
        room_id: RoomId,
        name: RoomName,
        topic: Topic,
        visibility: Visibility,
        /// Who created the room, its first owner. Stored as `owner_id` up to schema
        /// version 1 (see `stored::SCHEMA_VERSIONS`).
        created_by: UserId,
    },
    #[serde(rename = "DirectRoomOpened")]
    DirectRoomOpened {
        room_id: RoomId,
        user_ids: [UserId; 2],
        opened_by: UserId,
    },
    #[serde(rename = "RoomRenamed")]
    RoomRenamed { name: RoomName, renamed_by: UserId },
    #[serde(rename = "RoomTopicChanged")]
    RoomTopicChanged { topic: Topic, changed_by: UserId },
    #[serde(rename = "RoomVisibilityChanged")]
    RoomVisibilityChanged {
        visibility: Visibility,
        changed_by: UserId,
    },
    #[serde(rename = "MemberInvited")]
    MemberInvited { user_id: UserId, invited_by: UserId },
    #[serde(rename = "MemberJoined")]
    MemberJoined { user_id: UserId, role: Role },
    #[serde(rename = "MemberLeft")]
    MemberLeft { user_id: UserId },
    #[serde(rename = "MemberKicked")]
    MemberKicked { user_id: UserId, kicked_by: UserId },
    #[serde(rename = "MemberRoleChanged")]
    MemberRoleChanged {
        user_id: UserId,
        role: Role,
        changed_by: UserId,
        /// Changed with a server administrator's authority, not a room role (the audit).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        as_admin: bool,
    },
    /// The user may not be in the room until unbanned: a member is removed as by a kick, an
    /// invitation is withdrawn, and joining and invitations are refused.
    #[serde(rename = "MemberBanned")]
    MemberBanned {
        user_id: UserId,
        banned_by: UserId,
        /// Banned with a server administrator's authority, not a room role (the audit).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        as_admin: bool,
    },
    /// The ban is lifted: the user may join (or be invited) again.
    #[serde(rename = "MemberUnbanned")]
    MemberUnbanned {
        user_id: UserId,
        unbanned_by: UserId,
        /// Lifted with a server administrator's authority, not a room role (the audit).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        as_admin: bool,
    },
    #[serde(rename = "MessageSent")]
    MessageSent {
        message_id: MessageId,
        seq: u64,
        sender_id: UserId,
        body: MessageBody,
        reply_to: Option<MessageId>,
        client_msg_id: Option<String>,
        /// Files sent with the message (uploaded before): their description, never bytes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
        /// Members the body names (`@username`), resolved when the send was decided: each
        /// once, never the sender.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
        /// The body says `@room` and its sender moderates the room: every member is mentioned.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mentions_room: bool,
    },
    #[serde(rename = "MessageEdited")]
    MessageEdited {
        message_id: MessageId,
        seq: u64,
        body: MessageBody,
        edit_number: u32,
        edited_by: UserId,
    },
    #[serde(rename = "MessageDeleted")]
    MessageDeleted {
        message_id: MessageId,
        seq: u64,
        deleted_by: UserId,
        /// Deleted with a server administrator's authority, not as author or moderator (the
        /// audit).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        as_admin: bool,
    },
    #[serde(rename = "ReactionAdded")]
    ReactionAdded {
        message_id: MessageId,
        seq: u64,
        user_id: UserId,
        emoji: Emoji,
    },
    #[serde(rename = "ReactionRemoved")]
    ReactionRemoved {
        message_id: MessageId,
        seq: u64,
        user_id: UserId,
        emoji: Emoji,
    },
    #[serde(rename = "ReadMarkerMoved")]
    ReadMarkerMoved {
        user_id: UserId,
        seq: u64,
        /// The reader keeps their receipts private: the marker moves their own unread count
        /// and is shown to no one else.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        private: bool,
    },
    #[serde(rename = "NotificationLevelChanged")]
    NotificationLevelChanged {
        user_id: UserId,
        level: NotificationLevel,
    },
    /// The room keeps its messages for `days` (`None`: the server's default) from now on
    /// ([`crate::retention`]).
    #[serde(rename = "RoomRetentionChanged")]
    RoomRetentionChanged {
        days: Option<RetentionDays>,
        changed_by: UserId,
    },
    /// Every message with a seq at or below `up_to_seq` is gone: older than the room's
    /// retention when the retention job looked ([`crate::retention`]).
    #[serde(rename = "MessagesExpired")]
    MessagesExpired { up_to_seq: u64 },
}

impl StoredEvent for RoomEvent {
    const STREAM_TYPE: &'static str = "room";
}

impl RoomEvent {
    /// The seq of the message the event sends or changes; `None` for other events.
    pub fn message_seq(&self) -> Option<u64> {
        match self {
            RoomEvent::MessageSent { seq, .. }
            | RoomEvent::MessageEdited { seq, .. }
            | RoomEvent::MessageDeleted { seq, .. }
            | RoomEvent::ReactionAdded { seq, .. }
            | RoomEvent::ReactionRemoved { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// Whether the event sends or changes a message that expired once the room's messages
    /// up to `expired_up_to` did ([`crate::retention`]): no reader shows it any more.
    pub fn concerns_expired(&self, expired_up_to: u64) -> bool {
        self.message_seq().is_some_and(|seq| seq <= expired_up_to)
    }
}

/// What a user asks of a room. The actor is always the authenticated user; ids of
/// new things are chosen by the caller so that deciding stays deterministic.
#[derive(Clone, Debug, PartialEq)]
pub enum RoomCommand {
    Create {
        room_id: RoomId,
        name: RoomName,
        topic: Topic,
        visibility: Visibility,
    },
    /// Open (or re-open) the direct room of the actor and `with`.
    OpenDirect {
        room_id: RoomId,
        with: UserId,
    },
    Rename {
        name: RoomName,
    },
    ChangeTopic {
        topic: Topic,
    },
    ChangeVisibility {
        visibility: Visibility,
    },
    Invite {
        user_id: UserId,
    },
    Join,
    Leave,
    Kick {
        user_id: UserId,
    },
    ChangeRole {
        user_id: UserId,
        role: Role,
    },
    /// Removes a member as a kick does, or keeps a non-member out before they come; either
    /// way they cannot join or be invited until unbanned. Owner or admin, as for a kick.
    Ban {
        user_id: UserId,
    },
    Unban {
        user_id: UserId,
    },
    /// A command decided with a server administrator's authority instead of a room role
    /// ([`crate::room_admin`]). The caller has checked that the actor is one.
    AsServerAdmin(AdminCommand),
    SendMessage {
        message_id: MessageId,
        body: MessageBody,
        reply_to: Option<MessageId>,
        client_msg_id: Option<String>,
        /// Uploaded by the sender to this room (checked by the caller, who read them).
        attachments: Vec<Attachment>,
        /// The users the body's `@username`s name (looked up by the caller); only those who
        /// are members, other than the sender, are mentioned.
        mentions: Vec<UserId>,
        /// The body says `@room`; it mentions everyone only when the sender moderates.
        mention_room: bool,
    },
    EditMessage {
        message_id: MessageId,
        body: MessageBody,
    },
    DeleteMessage {
        message_id: MessageId,
    },
    AddReaction {
        message_id: MessageId,
        emoji: Emoji,
    },
    RemoveReaction {
        message_id: MessageId,
        emoji: Emoji,
    },
    MarkRead {
        seq: u64,
        /// The reader keeps their receipts private (their account's setting).
        private: bool,
    },
    /// The actor's own notification level in this room.
    SetNotificationLevel {
        level: NotificationLevel,
    },
    /// How long the room keeps its messages (`None`: the server's default). Owner or admin
    /// of a group room.
    ChangeRetention {
        days: Option<RetentionDays>,
    },
    /// Expires every message up to `up_to_seq` (at most the room's last). The retention
    /// job's: the caller has checked that they are older than the room's retention, and
    /// no member's role is asked.
    ExpireMessages {
        up_to_seq: u64,
    },
}

/// Every rule of the room aggregate, one variant each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("room not found")]
    NotFound,
    #[error("room already exists")]
    AlreadyExists,
    #[error("you are not a member of this room")]
    NotMember,
    #[error("user is already a member of this room")]
    AlreadyMember,
    #[error("user is not a member of this room")]
    TargetNotMember,
    #[error("user is already invited")]
    AlreadyInvited,
    #[error("the owner cannot leave a group room (ownership cannot be transferred yet)")]
    OwnerCannotLeave,
    #[error("only the room owner or an admin may do this")]
    NotPermitted,
    #[error("the owner cannot be the target of this action")]
    CannotTargetOwner,
    #[error("you cannot do this to yourself")]
    CannotTargetSelf,
    #[error("this cannot be done in a direct room")]
    DirectRoom,
    #[error("a direct room needs two different users")]
    DirectWithSelf,
    #[error("the owner role cannot be given")]
    CannotGrantOwner,
    #[error("message not found")]
    MessageNotFound,
    #[error("message was deleted")]
    MessageDeleted,
    #[error("only the author or a room admin may change this message")]
    NotAuthor,
    #[error("the message replied to is not in this room")]
    ReplyTargetNotFound,
    #[error("at most 20 distinct reactions per user per message")]
    TooManyReactions,
    #[error("read marker is beyond the last message")]
    ReadMarkerBeyondLastMessage,
    #[error("you are banned from this room")]
    Banned,
    #[error("user is banned from this room")]
    TargetBanned,
}

/// The kind of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomKind {
    Group,
    Direct,
}

/// What the rules need to know of a message.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MessageFacts {
    pub seq: u64,
    pub author: Option<UserId>,
    pub deleted: bool,
    pub edits: u32,
    pub reactions: HashMap<UserId, BTreeSet<Emoji>>,
}

/// The state the rules decide on, folded from the room's events by [`evolve`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RoomState {
    pub room_id: Option<RoomId>,
    pub kind: Option<RoomKind>,
    pub visibility: Option<Visibility>,
    pub owner: Option<UserId>,
    pub name: Option<RoomName>,
    /// Direct rooms: the two users.
    pub pair: Option<[UserId; 2]>,
    pub members: HashMap<UserId, Role>,
    pub invited: HashSet<UserId>,
    /// Users banned from the room: they cannot join or be invited.
    pub banned: HashSet<UserId>,
    pub last_seq: u64,
    /// The facts of the room's messages: all of them, unless [`RoomState::trim_messages`]
    /// forgot the oldest (then `messages_trimmed`, and a rule that needs a forgotten
    /// message gets it back with [`RoomState::learn_message`]).
    pub messages: HashMap<MessageId, MessageFacts>,
    /// The ids in `messages`, oldest first: what trimming forgets first.
    pub message_order: VecDeque<MessageId>,
    /// Whether facts were forgotten: a message not in `messages` may then be in the log.
    pub messages_trimmed: bool,
    pub read_markers: HashMap<UserId, u64>,
    /// The room's own retention period (`None`: the server's default).
    pub retention_days: Option<RetentionDays>,
    /// Messages with a seq at or below this have expired: no command may name them.
    pub expired_up_to: u64,
    /// Members' notification levels where they chose one; forgotten when they leave.
    pub notification_levels: HashMap<UserId, NotificationLevel>,
}

impl RoomState {
    pub fn exists(&self) -> bool {
        self.kind.is_some()
    }

    pub fn is_member(&self, user: UserId) -> bool {
        self.members.contains_key(&user)
    }

    pub fn role_of(&self, user: UserId) -> Option<Role> {
        self.members.get(&user).copied()
    }

    /// A member's notification level: the one they chose, else every message of a direct
    /// room and mentions in a group room.
    pub fn notification_level(&self, user: UserId) -> NotificationLevel {
        self.notification_levels
            .get(&user)
            .copied()
            .unwrap_or(match self.kind {
                Some(RoomKind::Direct) => NotificationLevel::All,
                _ => NotificationLevel::Mentions,
            })
    }

    fn is_private(&self) -> bool {
        self.visibility != Some(Visibility::Public)
    }

    /// The member's role, or the error a non-member gets: a private room (or one
    /// that does not exist) does not reveal that it exists.
    pub fn require_member(&self, actor: UserId) -> Result<Role, RoomError> {
        match self.members.get(&actor) {
            Some(r) => Ok(*r),
            None if self.is_private() => Err(RoomError::NotFound),
            None => Err(RoomError::NotMember),
        }
    }

    pub fn is_banned(&self, user: UserId) -> bool {
        self.banned.contains(&user)
    }

    fn moderator(&self, actor: UserId) -> Result<Role, RoomError> {
        let role = self.require_member(actor)?;
        if self.kind == Some(RoomKind::Direct) {
            return Err(RoomError::DirectRoom);
        }
        if !role.moderates() {
            return Err(RoomError::NotPermitted);
        }
        Ok(role)
    }

    /// Whether the facts of message `id` may be in the room's log but not in this state;
    /// the caller then reads the events that name it and gives them to
    /// [`RoomState::learn_message`] before deciding.
    pub fn lacks_message(&self, id: MessageId) -> bool {
        self.messages_trimmed && !self.messages.contains_key(&id)
    }

    /// Forgets the facts of the oldest messages until at most `keep` remain, so a room's
    /// state is bounded however long its history. Deciding stays exact: see
    /// [`RoomState::lacks_message`].
    pub fn trim_messages(&mut self, keep: usize) {
        while self.messages.len() > keep {
            let Some(id) = self.message_order.pop_front() else {
                break;
            };
            if self.messages.remove(&id).is_some() {
                self.messages_trimmed = true;
            }
        }
    }

    /// Puts back the facts of one message from all the room's events that name it, in
    /// order, up to this state's version: they are folded as [`evolve`] would have.
    pub fn learn_message<'a>(&mut self, events: impl IntoIterator<Item = &'a RoomEvent>) {
        let learnt = replay(events);
        for id in learnt.message_order {
            if let Some(facts) = learnt.messages.get(&id)
                && facts.seq > self.expired_up_to
                && !self.messages.contains_key(&id)
            {
                self.messages.insert(id, facts.clone());
                self.message_order.push_back(id);
            }
        }
    }

    pub(crate) fn live_message(&self, id: MessageId) -> Result<&MessageFacts, RoomError> {
        let m = self.messages.get(&id).ok_or(RoomError::MessageNotFound)?;
        if m.deleted {
            return Err(RoomError::MessageDeleted);
        }
        Ok(m)
    }

    /// Author, or a moderator of a group room, may change a message.
    fn may_change(&self, actor: UserId, role: Role, m: &MessageFacts) -> Result<(), RoomError> {
        let moderator = role.moderates() && self.kind == Some(RoomKind::Group);
        if m.author == Some(actor) || moderator {
            Ok(())
        } else {
            Err(RoomError::NotAuthor)
        }
    }
}

impl RoomCommand {
    /// The message whose facts deciding this command needs: the one it changes, or the
    /// one it replies to.
    pub fn message_ref(&self) -> Option<MessageId> {
        match self {
            RoomCommand::SendMessage { reply_to, .. } => *reply_to,
            RoomCommand::EditMessage { message_id, .. }
            | RoomCommand::DeleteMessage { message_id }
            | RoomCommand::AsServerAdmin(AdminCommand::DeleteMessage { message_id })
            | RoomCommand::AddReaction { message_id, .. }
            | RoomCommand::RemoveReaction { message_id, .. } => Some(*message_id),
            _ => None,
        }
    }
}

/// Decides what happens when `actor` issues `cmd` against a room in `state`.
/// No I/O: everything a rule needs is in the state or the command. An empty
/// vector means "already so" (an idempotent no-op), never an error.
pub fn decide(
    state: &RoomState,
    actor: UserId,
    cmd: RoomCommand,
) -> Result<Vec<RoomEvent>, RoomError> {
    use RoomCommand as C;
    use RoomEvent as E;

    if !state.exists() {
        return match cmd {
            C::Create {
                room_id,
                name,
                topic,
                visibility,
            } => Ok(vec![
                E::RoomCreated {
                    room_id,
                    name,
                    topic,
                    visibility,
                    created_by: actor,
                },
                E::MemberJoined {
                    user_id: actor,
                    role: Role::Owner,
                },
            ]),
            C::OpenDirect { room_id, with } => {
                if with == actor {
                    return Err(RoomError::DirectWithSelf);
                }
                Ok(vec![
                    E::DirectRoomOpened {
                        room_id,
                        user_ids: [actor, with],
                        opened_by: actor,
                    },
                    E::MemberJoined {
                        user_id: actor,
                        role: Role::Member,
                    },
                    E::MemberJoined {
                        user_id: with,
                        role: Role::Member,
                    },
                ])
            }
            _ => Err(RoomError::NotFound),
        };
    }

    match cmd {
        C::Create { .. } => Err(RoomError::AlreadyExists),
        C::OpenDirect { with, .. } => {
            let Some(pair) = state.pair else {
                return Err(RoomError::AlreadyExists);
            };
            if !pair.contains(&actor) || !pair.contains(&with) || actor == with {
                return Err(RoomError::AlreadyExists);
            }
            // Re-opening brings back whichever of the two had left.
            Ok(pair
                .iter()
                .filter(|u| !state.is_member(**u))
                .map(|u| E::MemberJoined {
                    user_id: *u,
                    role: Role::Member,
                })
                .collect())
        }
        C::Rename { name } => {
            state.moderator(actor)?;
            Ok(vec![E::RoomRenamed {
                name,
                renamed_by: actor,
            }])
        }
        C::ChangeTopic { topic } => {
            state.moderator(actor)?;
            Ok(vec![E::RoomTopicChanged {
                topic,
                changed_by: actor,
            }])
        }
        C::ChangeVisibility { visibility } => {
            state.moderator(actor)?;
            if state.visibility == Some(visibility) {
                return Ok(vec![]);
            }
            Ok(vec![E::RoomVisibilityChanged {
                visibility,
                changed_by: actor,
            }])
        }
        C::Invite { user_id } => {
            let role = state.require_member(actor)?;
            if state.kind == Some(RoomKind::Direct) {
                return Err(RoomError::DirectRoom);
            }
            if state.is_private() && !role.moderates() {
                return Err(RoomError::NotPermitted);
            }
            if state.is_banned(user_id) {
                return Err(RoomError::TargetBanned);
            }
            if state.is_member(user_id) {
                return Err(RoomError::AlreadyMember);
            }
            if state.invited.contains(&user_id) {
                return Err(RoomError::AlreadyInvited);
            }
            Ok(vec![E::MemberInvited {
                user_id,
                invited_by: actor,
            }])
        }
        C::Join => {
            if state.kind == Some(RoomKind::Direct) {
                return Err(if state.is_member(actor) {
                    RoomError::AlreadyMember
                } else {
                    RoomError::NotFound
                });
            }
            if state.is_member(actor) {
                return Err(RoomError::AlreadyMember);
            }
            if state.is_private() && !state.invited.contains(&actor) {
                // Whether the room exists is not revealed to the uninvited.
                return Err(RoomError::NotFound);
            }
            if state.is_banned(actor) {
                return Err(RoomError::Banned);
            }
            Ok(vec![E::MemberJoined {
                user_id: actor,
                role: Role::Member,
            }])
        }
        C::Leave => {
            let role = state.require_member(actor)?;
            // A group room without its owner could never change roles again.
            if role == Role::Owner && state.kind == Some(RoomKind::Group) {
                return Err(RoomError::OwnerCannotLeave);
            }
            Ok(vec![E::MemberLeft { user_id: actor }])
        }
        C::Kick { user_id } => {
            let role = state.moderator(actor)?;
            if user_id == actor {
                return Err(RoomError::CannotTargetSelf);
            }
            match state.role_of(user_id) {
                None => Err(RoomError::TargetNotMember),
                Some(Role::Owner) => Err(RoomError::CannotTargetOwner),
                Some(Role::Admin) if role != Role::Owner => Err(RoomError::NotPermitted),
                Some(_) => Ok(vec![E::MemberKicked {
                    user_id,
                    kicked_by: actor,
                }]),
            }
        }
        C::ChangeRole { user_id, role } => {
            let actor_role = state.moderator(actor)?;
            if actor_role != Role::Owner {
                return Err(RoomError::NotPermitted);
            }
            change_role(state, user_id, role, actor, false)
        }
        C::Ban { user_id } => {
            let role = state.moderator(actor)?;
            // Only the owner bans an admin, as only the owner kicks one.
            if user_id != actor
                && state.role_of(user_id) == Some(Role::Admin)
                && role != Role::Owner
            {
                return Err(RoomError::NotPermitted);
            }
            ban(state, user_id, actor, false)
        }
        C::Unban { user_id } => {
            state.moderator(actor)?;
            Ok(unban(state, user_id, actor, false))
        }
        C::AsServerAdmin(cmd) => crate::room_admin::decide(state, actor, cmd),
        C::SendMessage {
            message_id,
            body,
            reply_to,
            client_msg_id,
            attachments,
            mentions,
            mention_room,
        } => {
            let role = state.require_member(actor)?;
            if let Some(parent) = reply_to
                && !state.messages.contains_key(&parent)
            {
                return Err(RoomError::ReplyTargetNotFound);
            }
            // Only members are mentioned: a name that is not one stays text, and nobody
            // outside the room learns of the message.
            let mut named: Vec<UserId> = Vec::with_capacity(mentions.len());
            for u in mentions {
                if u != actor && state.is_member(u) && !named.contains(&u) {
                    named.push(u);
                }
            }
            Ok(vec![E::MessageSent {
                message_id,
                seq: state.last_seq + 1,
                sender_id: actor,
                body,
                reply_to,
                client_msg_id,
                attachments,
                mentions: named,
                mentions_room: mention_room
                    && state.kind == Some(RoomKind::Group)
                    && role.moderates(),
            }])
        }
        C::EditMessage { message_id, body } => {
            let role = state.require_member(actor)?;
            let m = state.live_message(message_id)?;
            state.may_change(actor, role, m)?;
            Ok(vec![E::MessageEdited {
                message_id,
                seq: m.seq,
                body,
                edit_number: m.edits + 1,
                edited_by: actor,
            }])
        }
        C::DeleteMessage { message_id } => {
            let role = state.require_member(actor)?;
            let m = state.live_message(message_id)?;
            state.may_change(actor, role, m)?;
            Ok(vec![E::MessageDeleted {
                message_id,
                seq: m.seq,
                deleted_by: actor,
                as_admin: false,
            }])
        }
        C::AddReaction { message_id, emoji } => {
            state.require_member(actor)?;
            let m = state.live_message(message_id)?;
            let mine = m.reactions.get(&actor);
            if mine.is_some_and(|set| set.contains(&emoji)) {
                return Ok(vec![]);
            }
            if mine.map_or(0, |set| set.len()) >= MAX_REACTIONS_PER_USER_PER_MESSAGE {
                return Err(RoomError::TooManyReactions);
            }
            Ok(vec![E::ReactionAdded {
                message_id,
                seq: m.seq,
                user_id: actor,
                emoji,
            }])
        }
        C::RemoveReaction { message_id, emoji } => {
            state.require_member(actor)?;
            let m = state.live_message(message_id)?;
            if !m.reactions.get(&actor).is_some_and(|s| s.contains(&emoji)) {
                return Ok(vec![]);
            }
            Ok(vec![E::ReactionRemoved {
                message_id,
                seq: m.seq,
                user_id: actor,
                emoji,
            }])
        }
        C::MarkRead { seq, private } => {
            state.require_member(actor)?;
            if seq > state.last_seq {
                return Err(RoomError::ReadMarkerBeyondLastMessage);
            }
            // A read marker never moves back.
            if seq <= state.read_markers.get(&actor).copied().unwrap_or(0) {
                return Ok(vec![]);
            }
            Ok(vec![E::ReadMarkerMoved {
                user_id: actor,
                seq,
                private,
            }])
        }
        C::SetNotificationLevel { level } => {
            state.require_member(actor)?;
            if state.notification_level(actor) == level {
                return Ok(vec![]);
            }
            Ok(vec![E::NotificationLevelChanged {
                user_id: actor,
                level,
            }])
        }
        C::ChangeRetention { days } => {
            state.moderator(actor)?;
            if state.retention_days == days {
                return Ok(vec![]);
            }
            Ok(vec![E::RoomRetentionChanged {
                days,
                changed_by: actor,
            }])
        }
        C::ExpireMessages { up_to_seq } => {
            let up_to_seq = up_to_seq.min(state.last_seq);
            if up_to_seq <= state.expired_up_to {
                return Ok(vec![]);
            }
            Ok(vec![E::MessagesExpired { up_to_seq }])
        }
    }
}

/// Gives member `user_id` `role` (by `by`): never the owner's role, never to the owner; nothing
/// when it is theirs already. Who may is the caller's rule.
pub(crate) fn change_role(
    state: &RoomState,
    user_id: UserId,
    role: Role,
    by: UserId,
    as_admin: bool,
) -> Result<Vec<RoomEvent>, RoomError> {
    if role == Role::Owner {
        return Err(RoomError::CannotGrantOwner);
    }
    match state.role_of(user_id) {
        None => Err(RoomError::TargetNotMember),
        Some(Role::Owner) => Err(RoomError::CannotTargetOwner),
        Some(current) if current == role => Ok(vec![]),
        Some(_) => Ok(vec![RoomEvent::MemberRoleChanged {
            user_id,
            role,
            changed_by: by,
            as_admin,
        }]),
    }
}

/// Bans `user_id` (by `by`): never oneself nor the owner (a group room without its owner could
/// never change roles again); nothing when they are banned already. Who may is the caller's
/// rule.
pub(crate) fn ban(
    state: &RoomState,
    user_id: UserId,
    by: UserId,
    as_admin: bool,
) -> Result<Vec<RoomEvent>, RoomError> {
    if user_id == by {
        return Err(RoomError::CannotTargetSelf);
    }
    if state.role_of(user_id) == Some(Role::Owner) {
        return Err(RoomError::CannotTargetOwner);
    }
    if state.is_banned(user_id) {
        return Ok(vec![]);
    }
    Ok(vec![RoomEvent::MemberBanned {
        user_id,
        banned_by: by,
        as_admin,
    }])
}

/// Lifts the ban of `user_id` (by `by`); nothing when there is none.
pub(crate) fn unban(
    state: &RoomState,
    user_id: UserId,
    by: UserId,
    as_admin: bool,
) -> Vec<RoomEvent> {
    if !state.is_banned(user_id) {
        return vec![];
    }
    vec![RoomEvent::MemberUnbanned {
        user_id,
        unbanned_by: by,
        as_admin,
    }]
}

/// Folds one event into the state. Total: it never fails, so any stored history
/// can be replayed.
pub fn evolve(mut state: RoomState, event: &RoomEvent) -> RoomState {
    use RoomEvent as E;
    match event {
        E::RoomCreated {
            room_id,
            name,
            visibility,
            created_by,
            ..
        } => {
            state.room_id = Some(*room_id);
            state.kind = Some(RoomKind::Group);
            state.visibility = Some(*visibility);
            state.owner = Some(*created_by);
            state.name = Some(name.clone());
        }
        E::DirectRoomOpened {
            room_id, user_ids, ..
        } => {
            state.room_id = Some(*room_id);
            state.kind = Some(RoomKind::Direct);
            state.visibility = Some(Visibility::Private);
            state.pair = Some(*user_ids);
        }
        E::RoomRenamed { name, .. } => state.name = Some(name.clone()),
        E::RoomTopicChanged { .. } => {}
        E::RoomVisibilityChanged { visibility, .. } => state.visibility = Some(*visibility),
        E::MemberInvited { user_id, .. } => {
            state.invited.insert(*user_id);
        }
        E::MemberJoined { user_id, role } => {
            state.invited.remove(user_id);
            state.members.insert(*user_id, *role);
        }
        E::MemberLeft { user_id } | E::MemberKicked { user_id, .. } => {
            state.members.remove(user_id);
            state.invited.remove(user_id);
            state.notification_levels.remove(user_id);
        }
        E::MemberRoleChanged { user_id, role, .. } => {
            if let Some(r) = state.members.get_mut(user_id) {
                *r = *role;
            }
        }
        E::MemberBanned { user_id, .. } => {
            state.members.remove(user_id);
            state.invited.remove(user_id);
            state.notification_levels.remove(user_id);
            state.banned.insert(*user_id);
        }
        E::MemberUnbanned { user_id, .. } => {
            state.banned.remove(user_id);
        }
        E::MessageSent {
            message_id,
            seq,
            sender_id,
            ..
        } => {
            state.last_seq = state.last_seq.max(*seq);
            let facts = MessageFacts {
                seq: *seq,
                author: Some(*sender_id),
                ..MessageFacts::default()
            };
            if state.messages.insert(*message_id, facts).is_none() {
                state.message_order.push_back(*message_id);
            }
        }
        E::MessageEdited {
            message_id,
            edit_number,
            ..
        } => {
            if let Some(m) = state.messages.get_mut(message_id) {
                m.edits = *edit_number;
            }
        }
        E::MessageDeleted { message_id, .. } => {
            if let Some(m) = state.messages.get_mut(message_id) {
                m.deleted = true;
                m.reactions.clear();
            }
        }
        E::ReactionAdded {
            message_id,
            user_id,
            emoji,
            ..
        } => {
            if let Some(m) = state.messages.get_mut(message_id) {
                m.reactions
                    .entry(*user_id)
                    .or_default()
                    .insert(emoji.clone());
            }
        }
        E::ReactionRemoved {
            message_id,
            user_id,
            emoji,
            ..
        } => {
            if let Some(m) = state.messages.get_mut(message_id)
                && let Some(set) = m.reactions.get_mut(user_id)
            {
                set.remove(emoji);
                if set.is_empty() {
                    m.reactions.remove(user_id);
                }
            }
        }
        E::ReadMarkerMoved { user_id, seq, .. } => {
            let marker = state.read_markers.entry(*user_id).or_insert(0);
            *marker = (*marker).max(*seq);
        }
        E::NotificationLevelChanged { user_id, level } => {
            state.notification_levels.insert(*user_id, *level);
        }
        E::RoomRetentionChanged { days, .. } => state.retention_days = *days,
        E::MessagesExpired { up_to_seq } => {
            state.expired_up_to = state.expired_up_to.max(*up_to_seq);
            let up_to = state.expired_up_to;
            state.messages.retain(|_, m| m.seq > up_to);
            let messages = &state.messages;
            state.message_order.retain(|id| messages.contains_key(id));
        }
    }
    state
}

/// Folds many events.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a RoomEvent>) -> RoomState {
    events.into_iter().fold(RoomState::default(), evolve)
}
