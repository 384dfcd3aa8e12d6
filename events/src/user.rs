//! The user aggregate: registration. Credentials are not events (a password hash
//! never travels through the log or the bus); they live beside the log, written in
//! the same transaction.

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

/// State of a user stream: whether it exists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserState {
    pub registered: Option<(UserId, Username)>,
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
            user_id, username, ..
        } => state.registered = Some((*user_id, username.clone())),
    }
    state
}
