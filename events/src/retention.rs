//! Message retention (issue #18): how long a room keeps its messages. A room's own period, set
//! by its moderators (`RoomRetentionChanged`), or else the server's default; messages older
//! than it are expired by a scheduled job through `MessagesExpired { up_to_seq }`, an event
//! like any other, so a rebuild from the log expires them again.
//!
//! Expiry is a prefix of the room's messages: every message with a seq at or below
//! `up_to_seq`, whatever became of it. The log keeps the events (it is the source of truth);
//! every reader of it leaves the expired messages out.

use crate::values::ValidationError;
use serde::{Deserialize, Serialize};

/// A retention period in whole days: 1 to 36,500 (a hundred years).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "u32", into = "u32")]
pub struct RetentionDays(u32);

impl RetentionDays {
    pub const MIN: u32 = 1;
    pub const MAX: u32 = 36_500;

    pub fn parse(days: u32) -> Result<Self, ValidationError> {
        if (Self::MIN..=Self::MAX).contains(&days) {
            Ok(Self(days))
        } else {
            Err(ValidationError::RetentionDaysOutOfRange)
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for RetentionDays {
    type Error = ValidationError;
    fn try_from(days: u32) -> Result<Self, Self::Error> {
        Self::parse(days)
    }
}

impl From<RetentionDays> for u32 {
    fn from(d: RetentionDays) -> u32 {
        d.0
    }
}

/// The server's default period from its setting (`APP_RETENTION_DAYS`, read by the write
/// side, whose job expires messages, and by the read side, which tells clients): 0 keeps
/// messages for ever (`None`); otherwise 1 to [`RetentionDays::MAX`] days.
///
/// ```
/// use events::retention::server_default;
/// assert_eq!(server_default(0), Ok(None));
/// assert_eq!(server_default(30).unwrap().map(|d| d.get()), Some(30));
/// assert!(server_default(36_501).is_err());
/// ```
pub fn server_default(days: u32) -> Result<Option<RetentionDays>, ValidationError> {
    match days {
        0 => Ok(None),
        days => RetentionDays::parse(days).map(Some),
    }
}

/// The period that applies to a room: its own, else the server's default; `None` keeps
/// messages for ever.
pub fn effective(
    room: Option<RetentionDays>,
    server_default: Option<RetentionDays>,
) -> Option<RetentionDays> {
    room.or(server_default)
}

/// How far a room's messages expire: the highest seq of the longest run of its oldest
/// messages (`oldest`: `(seq, sent before the cutoff)` in seq order, starting after what is
/// expired already) that were all sent before the cutoff. `None` when the oldest is not.
pub fn expire_up_to(oldest: impl IntoIterator<Item = (u64, bool)>) -> Option<u64> {
    oldest
        .into_iter()
        .take_while(|(_, before_cutoff)| *before_cutoff)
        .map(|(seq, _)| seq)
        .last()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_one_day_to_a_hundred_years() {
        assert!(RetentionDays::parse(0).is_err());
        assert_eq!(RetentionDays::parse(1).unwrap().get(), 1);
        assert_eq!(RetentionDays::parse(36_500).unwrap().get(), 36_500);
        assert_eq!(
            RetentionDays::parse(36_501),
            Err(ValidationError::RetentionDaysOutOfRange)
        );
        assert!(serde_json::from_str::<RetentionDays>("0").is_err());
        assert_eq!(serde_json::to_string(&RetentionDays(30)).unwrap(), "30");
    }

    #[test]
    fn a_rooms_own_period_wins_over_the_servers() {
        let d = |n| Some(RetentionDays::parse(n).unwrap());
        assert_eq!(effective(d(7), d(30)), d(7));
        assert_eq!(effective(None, d(30)), d(30));
        assert_eq!(effective(None, None), None);
    }

    #[test]
    fn expiry_stops_at_the_first_message_inside_the_period() {
        assert_eq!(
            expire_up_to([(3, true), (4, true), (6, false), (7, true)]),
            Some(4)
        );
        assert_eq!(expire_up_to([(3, false), (4, true)]), None);
        assert_eq!(expire_up_to([]), None);
    }
}
