//! Parsed domain values. Constructing one is the only way to get one, so a value
//! that exists has passed its rules.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an input value was refused. Each variant maps to a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("username must be 3 to 32 characters")]
    UsernameLength,
    #[error("username may only contain a-z, 0-9, '_', '.' and '-'")]
    UsernameCharacters,
    #[error("password must be 10 to 1024 characters")]
    PasswordLength,
    #[error("display name must be at most 64 characters")]
    DisplayNameTooLong,
    #[error("room name must be 1 to 80 characters")]
    RoomNameLength,
    #[error("topic must be at most 1024 characters")]
    TopicTooLong,
    #[error("message body must not be empty")]
    BodyEmpty,
    #[error("message body must be at most 4000 characters")]
    BodyTooLong,
    #[error("text must not contain NUL characters")]
    ContainsNul,
    #[error("emoji must be 1 to 32 bytes without whitespace or '/'")]
    EmojiInvalid,
}

impl ValidationError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UsernameLength => "invalid_username",
            Self::UsernameCharacters => "invalid_username",
            Self::PasswordLength => "invalid_password",
            Self::DisplayNameTooLong => "invalid_display_name",
            Self::RoomNameLength => "invalid_room_name",
            Self::TopicTooLong => "invalid_topic",
            Self::BodyEmpty | Self::BodyTooLong => "invalid_body",
            Self::ContainsNul => "invalid_text",
            Self::EmojiInvalid => "invalid_emoji",
        }
    }
}

fn no_nul(s: &str) -> Result<(), ValidationError> {
    if s.contains('\0') {
        Err(ValidationError::ContainsNul)
    } else {
        Ok(())
    }
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The value, consumed.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_value!(
    /// 3–32 characters of `[a-z0-9_.-]`.
    ///
    /// ```
    /// use events::values::Username;
    /// assert!(Username::parse("alice_01").is_ok());
    /// assert!(Username::parse("Alice").is_err());
    /// ```
    Username
);
string_value!(
    /// Up to 64 characters, trimmed.
    DisplayName
);
string_value!(
    /// 1–80 characters after trimming.
    RoomName
);
string_value!(
    /// Up to 1024 characters, trimmed; may be empty.
    Topic
);
string_value!(
    /// 1–4000 characters after trimming, no NUL.
    MessageBody
);
string_value!(
    /// A reaction key: 1–32 bytes, no whitespace, no '/'.
    Emoji
);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let n = raw.chars().count();
        if !(3..=32).contains(&n) {
            return Err(ValidationError::UsernameLength);
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ValidationError::UsernameCharacters);
        }
        Ok(Self(raw.to_owned()))
    }
}

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        let t = raw.trim();
        if t.chars().count() > 64 {
            return Err(ValidationError::DisplayNameTooLong);
        }
        Ok(Self(t.to_owned()))
    }

    /// The default display name: the username itself (always valid: ≤ 32 ASCII characters).
    pub fn from_username(username: &Username) -> Self {
        Self(username.as_str().to_owned())
    }
}

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        let t = raw.trim();
        if !(1..=80).contains(&t.chars().count()) {
            return Err(ValidationError::RoomNameLength);
        }
        Ok(Self(t.to_owned()))
    }
}

impl Topic {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        let t = raw.trim();
        if t.chars().count() > 1024 {
            return Err(ValidationError::TopicTooLong);
        }
        Ok(Self(t.to_owned()))
    }
}

impl MessageBody {
    /// Trims surrounding whitespace and checks 1–4000 characters, no NUL.
    ///
    /// ```
    /// use events::values::MessageBody;
    /// assert_eq!(MessageBody::parse("  hi  ").unwrap().as_str(), "hi");
    /// assert!(MessageBody::parse("   ").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        let t = raw.trim();
        let n = t.chars().count();
        if n == 0 {
            return Err(ValidationError::BodyEmpty);
        }
        if n > 4000 {
            return Err(ValidationError::BodyTooLong);
        }
        Ok(Self(t.to_owned()))
    }
}

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty()
            || raw.len() > 32
            || raw
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            return Err(ValidationError::EmojiInvalid);
        }
        Ok(Self(raw.to_owned()))
    }
}

/// A password as typed: 10–1024 characters. Never serialized, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if !(10..=1024).contains(&raw.chars().count()) {
            return Err(ValidationError::PasswordLength);
        }
        Ok(Self(raw.to_owned()))
    }
    /// The secret, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

/// Who may see and join a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed; anyone may join.
    Public,
    /// Unlisted; joining needs an invite.
    Private,
}

/// A member's role in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// Owner and admins moderate: rename, kick, delete others' messages.
    pub fn moderates(self) -> bool {
        matches!(self, Role::Admin | Role::Owner)
    }
}
