//! The user aggregate: registration, the profile (display name, avatar) and settings.
//! Credentials are not events (a password hash never travels through the log or the bus);
//! they live beside the log, written in the same transaction.

use crate::avatar::AvatarRef;
use crate::ids::UserId;
use crate::stored::StoredEvent;
use crate::values::{DisplayName, Username};
use serde::{Deserialize, Serialize};

/// Events of a `user-<id>` stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    #[serde(rename = "UserRegistered")]
    UserRegistered {
        user_id: UserId,
        username: Username,
        display_name: DisplayName,
    },
    /// Whether the user's read receipts are shown to the rooms they read (`private`: to no
    /// one). Their own unread counts use every marker either way.
    #[serde(rename = "ReadReceiptsPrivacyChanged")]
    ReadReceiptsPrivacyChanged { user_id: UserId, private: bool },
    /// The name others see. An empty one means "my username" again.
    #[serde(rename = "DisplayNameChanged")]
    DisplayNameChanged {
        user_id: UserId,
        display_name: DisplayName,
    },
    /// The picture others see beside the user's name: a new one, or none (`avatar: None`,
    /// removed). Nothing in it is sealed: it names an image in blob storage by a random id
    /// (see [`AvatarRef`]).
    #[serde(rename = "AvatarChanged")]
    AvatarChanged {
        user_id: UserId,
        avatar: Option<AvatarRef>,
    },
    /// A server administrator deactivated the account: it cannot sign in, its tokens are
    /// refused, its messages stay.
    #[serde(rename = "UserDeactivated")]
    UserDeactivated {
        user_id: UserId,
        deactivated_by: UserId,
    },
    /// The user was erased (by themselves or a server administrator): their data keys were
    /// shredded as this was appended, so every personal value they own in the log (sealed
    /// under those keys, ADR 23) reads as erased from now on, in a rebuild too.
    #[serde(rename = "UserErased")]
    UserErased { user_id: UserId, erased_by: UserId },
}

impl UserEvent {
    /// The user whose stream holds the event.
    pub fn user_id(&self) -> UserId {
        match self {
            UserEvent::UserRegistered { user_id, .. }
            | UserEvent::ReadReceiptsPrivacyChanged { user_id, .. }
            | UserEvent::DisplayNameChanged { user_id, .. }
            | UserEvent::AvatarChanged { user_id, .. }
            | UserEvent::UserDeactivated { user_id, .. }
            | UserEvent::UserErased { user_id, .. } => *user_id,
        }
    }
}

impl StoredEvent for UserEvent {
    const STREAM_TYPE: &'static str = "user";
}

/// Rules of the user aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("user already registered")]
    AlreadyRegistered,
}

/// Registers a user. The username's uniqueness is guarded by the credentials table.
#[derive(Clone, Debug, PartialEq)]
pub struct Register {
    pub user_id: UserId,
    pub username: Username,
    pub display_name: Option<DisplayName>,
}

/// State of a user stream: whether it exists, and the user's settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserState {
    pub registered: Option<(UserId, Username)>,
    /// Read receipts are kept private.
    pub private_receipts: bool,
    /// The name others see.
    pub display_name: Option<DisplayName>,
    /// The picture others see; none after an erasure.
    pub avatar: Option<AvatarRef>,
    pub deactivated: bool,
    pub erased: bool,
}

/// Deactivates the account (by `admin`); no event when it is already.
pub fn deactivate(state: &UserState, admin: UserId) -> Vec<UserEvent> {
    match state.registered {
        Some((user_id, _)) if !state.deactivated => vec![UserEvent::UserDeactivated {
            user_id,
            deactivated_by: admin,
        }],
        _ => vec![],
    }
}

/// Erases the account (by the user or an administrator): deactivated first if it is not, then
/// erased; no event when it is already.
pub fn erase(state: &UserState, by: UserId) -> Vec<UserEvent> {
    let Some((user_id, _)) = state.registered else {
        return vec![];
    };
    if state.erased {
        return vec![];
    }
    let mut events = deactivate(state, by);
    events.push(UserEvent::UserErased {
        user_id,
        erased_by: by,
    });
    events
}

/// Changes the name others see (an empty one: the username again); no event when it is
/// that already.
pub fn change_display_name(state: &UserState, display_name: DisplayName) -> Vec<UserEvent> {
    let Some((user_id, username)) = &state.registered else {
        return vec![];
    };
    let display_name = if display_name.as_str().is_empty() {
        DisplayName::from_username(username)
    } else {
        display_name
    };
    if state.display_name.as_ref() == Some(&display_name) {
        return vec![];
    }
    vec![UserEvent::DisplayNameChanged {
        user_id: *user_id,
        display_name,
    }]
}

/// Sets the picture others see (`None`: removes it); no event when it shows that already (the
/// same picture uploaded again, or removing none), nor for an erased account.
pub fn change_avatar(state: &UserState, avatar: Option<AvatarRef>) -> Vec<UserEvent> {
    let Some((user_id, _)) = &state.registered else {
        return vec![];
    };
    if state.erased {
        return vec![];
    }
    let unchanged = match (&state.avatar, &avatar) {
        (None, None) => true,
        (Some(now), Some(new)) => now.same_picture(new),
        _ => false,
    };
    if unchanged {
        return vec![];
    }
    vec![UserEvent::AvatarChanged {
        user_id: *user_id,
        avatar,
    }]
}

/// Keeps one's read receipts private, or shows them again: no event when already so.
pub fn set_receipts_privacy(state: &UserState, private: bool) -> Vec<UserEvent> {
    match state.registered {
        Some((user_id, _)) if state.private_receipts != private => {
            vec![UserEvent::ReadReceiptsPrivacyChanged { user_id, private }]
        }
        _ => vec![],
    }
}

pub fn decide(state: &UserState, cmd: Register) -> Result<Vec<UserEvent>, UserError> {
    if state.registered.is_some() {
        return Err(UserError::AlreadyRegistered);
    }
    let display_name = cmd
        .display_name
        .filter(|d| !d.as_str().is_empty())
        .unwrap_or_else(|| DisplayName::from_username(&cmd.username));
    Ok(vec![UserEvent::UserRegistered {
        user_id: cmd.user_id,
        username: cmd.username,
        display_name,
    }])
}

pub fn evolve(mut state: UserState, event: &UserEvent) -> UserState {
    match event {
        UserEvent::UserRegistered {
            user_id,
            username,
            display_name,
        } => {
            state.registered = Some((*user_id, username.clone()));
            state.display_name = Some(display_name.clone());
        }
        UserEvent::DisplayNameChanged { display_name, .. } => {
            state.display_name = Some(display_name.clone());
        }
        UserEvent::AvatarChanged { avatar, .. } => state.avatar = avatar.clone(),
        UserEvent::UserDeactivated { .. } => state.deactivated = true,
        UserEvent::UserErased { .. } => {
            state.erased = true;
            state.avatar = None;
        }
        UserEvent::ReadReceiptsPrivacyChanged { private, .. } => {
            state.private_receipts = *private;
        }
    }
    state
}
