//! A server administrator's authority over group rooms (issue #18): changing a member's role,
//! deleting any message and banning, in any group room, member of it or not. Who is a server
//! administrator is not the room's to know: the caller checks it and hands the command in as
//! [`RoomCommand::AsServerAdmin`](crate::room::RoomCommand::AsServerAdmin). The events name the
//! administrator as the actor (`changed_by`, `deleted_by`, `banned_by`, `unbanned_by`) and carry
//! `as_admin: true`, so the audit trail (the log) tells these apart from a room's own
//! moderation.
//!
//! ```
//! use events::ids::{RoomId, UserId};
//! use events::room::{decide, replay, AdminCommand, RoomCommand, RoomEvent};
//! use events::values::{RoomName, Topic, Visibility};
//!
//! let (owner, admin, troll) = (UserId::new(), UserId::new(), UserId::new());
//! let created = decide(&replay([]), owner, RoomCommand::Create {
//!     room_id: RoomId::new(),
//!     name: RoomName::parse("general").unwrap(),
//!     topic: Topic::parse("").unwrap(),
//!     visibility: Visibility::Public,
//! }).unwrap();
//! // Not a member of the room, yet the ban is decided.
//! let banned = decide(&replay(&created), admin,
//!     RoomCommand::AsServerAdmin(AdminCommand::Ban { user_id: troll })).unwrap();
//! assert_eq!(banned, vec![RoomEvent::MemberBanned { user_id: troll, banned_by: admin, as_admin: true }]);
//! ```

use crate::ids::{MessageId, UserId};
use crate::room::{RoomError, RoomEvent, RoomKind, RoomState, ban, change_role, unban};
use crate::values::Role;

/// What a server administrator may do in a group room without a role in it.
#[derive(Clone, Debug, PartialEq)]
pub enum AdminCommand {
    /// Any member's role but the owner's, to anything but owner.
    ChangeRole {
        user_id: UserId,
        role: Role,
    },
    /// Any message that is not deleted.
    DeleteMessage {
        message_id: MessageId,
    },
    /// Anyone but the owner (and oneself), member or not.
    Ban {
        user_id: UserId,
    },
    Unban {
        user_id: UserId,
    },
}

/// Decides `cmd` by server administrator `admin` against an existing room.
pub(crate) fn decide(
    state: &RoomState,
    admin: UserId,
    cmd: AdminCommand,
) -> Result<Vec<RoomEvent>, RoomError> {
    if state.kind == Some(RoomKind::Direct) {
        return Err(RoomError::DirectRoom);
    }
    match cmd {
        AdminCommand::ChangeRole { user_id, role } => {
            change_role(state, user_id, role, admin, true)
        }
        AdminCommand::DeleteMessage { message_id } => {
            let m = state.live_message(message_id)?;
            Ok(vec![RoomEvent::MessageDeleted {
                message_id,
                seq: m.seq,
                deleted_by: admin,
                as_admin: true,
            }])
        }
        AdminCommand::Ban { user_id } => ban(state, user_id, admin, true),
        AdminCommand::Unban { user_id } => Ok(unban(state, user_id, admin, true)),
    }
}
