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
    #[error("emoji must be 1 to 32 characters without whitespace, control characters or '/'")]
    EmojiInvalid,
    #[error("file name must be 1 to 255 characters without control characters, '/' or '\\'")]
    FileNameInvalid,
    #[error("retention must be 1 to 36500 days")]
    RetentionDaysOutOfRange,
}

impl ValidationError {
    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::FileNameInvalid => "invalid_file_name",
            Self::RetentionDaysOutOfRange => "invalid_retention",
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

/// What a text value must be, as a schema states it, so that the OpenAPI document is
/// generated from the rule that is enforced: a length in characters (Unicode scalar values;
/// JSON Schema's `minLength`/`maxLength`) and an ECMA-262 `pattern`. The length is the
/// value's as sent, before a value that trims surrounding whitespace does so; where the
/// trimmed value must not be empty, the pattern asks for a character that is not whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextRule {
    pub min_chars: usize,
    pub max_chars: usize,
    pub pattern: Option<&'static str>,
}

/// Any text without NUL (PostgreSQL refuses it).
pub const NO_NUL: &str = r"^[^\u0000]*$";
/// Text without NUL with at least one character that is neither NUL nor whitespace (as
/// `char::is_whitespace`, which `str::trim` uses).
pub const NOT_BLANK: &str = r"^[^\u0000]*[^\u0000\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000]*$";

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
    /// Up to 64 characters (as sent), trimmed.
    DisplayName
);
string_value!(
    /// Up to 80 characters (as sent), not blank, trimmed.
    RoomName
);
string_value!(
    /// Up to 1024 characters (as sent), trimmed; may be empty.
    Topic
);
string_value!(
    /// Up to 4000 characters (as sent), not blank, no NUL; trimmed.
    MessageBody
);
string_value!(
    /// A reaction key: 1–32 characters, no whitespace, control character or '/'.
    Emoji
);
string_value!(
    /// An attachment's file name as the uploader gave it: 1–255 characters, trimmed, no
    /// control character, '/' or '\\' (it names a download, never a path).
    FileName
);

impl FileName {
    /// No control character, `/` or backslash, and at least one other character that is not
    /// whitespace (as `char::is_control` and `char::is_whitespace` say).
    pub const RULE: TextRule = TextRule {
        min_chars: 1,
        max_chars: 255,
        pattern: Some(
            r"^[^\u0000-\u001f\u007f-\u009f/\\]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000/\\][^\u0000-\u001f\u007f-\u009f/\\]*$",
        ),
    };

    /// ```
    /// use events::values::FileName;
    /// assert_eq!(FileName::parse(" cat.png ").unwrap().as_str(), "cat.png");
    /// assert!(FileName::parse("../etc/passwd").is_err());
    /// assert!(FileName::parse("a\nb").is_err());
    /// assert!(FileName::parse("  ").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = |c: char| c.is_control() || c == '/' || c == '\\';
        let t = raw.trim();
        if t.is_empty() || raw.chars().count() > Self::RULE.max_chars || raw.chars().any(bad) {
            return Err(ValidationError::FileNameInvalid);
        }
        Ok(Self(t.to_owned()))
    }
}

impl Username {
    pub const RULE: TextRule = TextRule {
        min_chars: 3,
        max_chars: 32,
        pattern: Some("^[a-z0-9_.-]*$"),
    };

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let n = raw.chars().count();
        if !(Self::RULE.min_chars..=Self::RULE.max_chars).contains(&n) {
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
    pub const RULE: TextRule = TextRule {
        min_chars: 0,
        max_chars: 64,
        pattern: Some(NO_NUL),
    };

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        if raw.chars().count() > Self::RULE.max_chars {
            return Err(ValidationError::DisplayNameTooLong);
        }
        Ok(Self(raw.trim().to_owned()))
    }

    /// The default display name: the username itself (always valid: ≤ 32 ASCII characters).
    pub fn from_username(username: &Username) -> Self {
        Self(username.as_str().to_owned())
    }
}

impl RoomName {
    pub const RULE: TextRule = TextRule {
        min_chars: 1,
        max_chars: 80,
        pattern: Some(NOT_BLANK),
    };

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        let t = raw.trim();
        if t.is_empty() || raw.chars().count() > Self::RULE.max_chars {
            return Err(ValidationError::RoomNameLength);
        }
        Ok(Self(t.to_owned()))
    }
}

impl Topic {
    pub const RULE: TextRule = TextRule {
        min_chars: 0,
        max_chars: 1024,
        pattern: Some(NO_NUL),
    };

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        if raw.chars().count() > Self::RULE.max_chars {
            return Err(ValidationError::TopicTooLong);
        }
        Ok(Self(raw.trim().to_owned()))
    }
}

impl MessageBody {
    pub const RULE: TextRule = TextRule {
        min_chars: 1,
        max_chars: 4000,
        pattern: Some(NOT_BLANK),
    };

    /// Checks at most 4000 characters, not blank, no NUL, and trims surrounding whitespace.
    ///
    /// ```
    /// use events::values::MessageBody;
    /// assert_eq!(MessageBody::parse("  hi  ").unwrap().as_str(), "hi");
    /// assert!(MessageBody::parse("   ").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        no_nul(raw)?;
        let t = raw.trim();
        if t.is_empty() {
            return Err(ValidationError::BodyEmpty);
        }
        if raw.chars().count() > Self::RULE.max_chars {
            return Err(ValidationError::BodyTooLong);
        }
        Ok(Self(t.to_owned()))
    }
}

impl Emoji {
    /// No whitespace (`char::is_whitespace`), control character (`char::is_control`) or '/'.
    pub const RULE: TextRule = TextRule {
        min_chars: 1,
        max_chars: 32,
        pattern: Some(
            r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000/]*$",
        ),
    };

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let n = raw.chars().count();
        if !(Self::RULE.min_chars..=Self::RULE.max_chars).contains(&n)
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
    pub const RULE: TextRule = TextRule {
        min_chars: 10,
        max_chars: 1024,
        pattern: None,
    };

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if !(Self::RULE.min_chars..=Self::RULE.max_chars).contains(&raw.chars().count()) {
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

/// When a member is notified of a room's messages while not looking at it (a `notification`
/// frame on their live feed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// Every message.
    All,
    /// Messages that mention them (by name or `@room`); every message of a direct room.
    Mentions,
    /// Nothing.
    None,
}

impl NotificationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationLevel::All => "all",
            NotificationLevel::Mentions => "mentions",
            NotificationLevel::None => "none",
        }
    }

    /// Parses the stored or requested name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(NotificationLevel::All),
            "mentions" => Some(NotificationLevel::Mentions),
            "none" => Some(NotificationLevel::None),
            _ => None,
        }
    }
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

#[cfg(test)]
mod rule_tests {
    use super::*;

    /// Every character of the Basic Multilingual Plane's first part and some beyond, in the
    /// places a rule looks at: alone, between letters, and padded.
    fn samples() -> impl Iterator<Item = String> {
        let chars = (0u32..0x3100)
            .chain([0xfeff, 0xfffd, 0x1f44d])
            .filter_map(char::from_u32);
        let one = chars.flat_map(|c| [format!("{c}"), format!("ab{c}cd"), format!("{c}{c}{c}")]);
        // Lengths around every limit, bare and padded with whitespace.
        let lengths = [
            2, 3, 9, 10, 31, 32, 33, 63, 64, 65, 79, 80, 81, 1023, 1024, 1025, 3999, 4000, 4001,
        ];
        let long = lengths.into_iter().flat_map(|n| {
            let a = "a".repeat(n);
            [
                a.clone(),
                format!(" {}", &a[1..]),
                format!("{} ", &a[1..]),
                format!("  {a}"),
            ]
        });
        one.chain(long)
    }

    /// A value matches its rule (length and pattern) exactly when the parser takes it.
    fn agree(name: &str, rule: TextRule, parse: impl Fn(&str) -> bool) {
        let pattern = regex::Regex::new(rule.pattern.unwrap_or("")).expect(name);
        for s in samples() {
            let n = s.chars().count();
            let by_rule = (rule.min_chars..=rule.max_chars).contains(&n) && pattern.is_match(&s);
            let parsed = parse(&s);
            assert_eq!(
                by_rule,
                parsed,
                "{name}: {s:?} (U+{:04X}…)",
                s.chars().next().map_or(0, u32::from)
            );
        }
    }

    #[test]
    fn each_rule_states_what_its_parser_enforces() {
        agree("username", Username::RULE, |s| Username::parse(s).is_ok());
        agree("password", Password::RULE, |s| Password::parse(s).is_ok());
        agree("display name", DisplayName::RULE, |s| {
            DisplayName::parse(s).is_ok()
        });
        agree("room name", RoomName::RULE, |s| RoomName::parse(s).is_ok());
        agree("topic", Topic::RULE, |s| Topic::parse(s).is_ok());
        agree("body", MessageBody::RULE, |s| MessageBody::parse(s).is_ok());
        agree("emoji", Emoji::RULE, |s| Emoji::parse(s).is_ok());
    }
}
