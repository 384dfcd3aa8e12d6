//! The opaque cursor of `next_cursor`: where a page ended and which snapshot it belongs to.
//! Clients pass it back unchanged; it is URL-safe base64 of a small JSON object.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::backend::{After, Sort};

/// A decoded cursor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "o")]
    pub sort: Sort,
    #[serde(rename = "s")]
    pub snapshot: i64,
    #[serde(rename = "p")]
    pub sent_position: i64,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        // A struct of numbers and an enum always serialises.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// `None` for anything that is not a cursor this server made.
    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > 200 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let c: Cursor = serde_json::from_slice(&bytes).ok()?;
        let consistent = match c.sort {
            Sort::Relevance => c.score.is_some_and(f32::is_finite),
            Sort::Recent => c.score.is_none(),
        };
        (consistent && c.snapshot >= 0 && c.sent_position >= 0).then_some(c)
    }

    pub fn after(&self) -> After {
        After {
            score: self.score,
            sent_position: self.sent_position,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            sort: Sort::Relevance,
            snapshot: 99,
            sent_position: 42,
            score: Some(1.234_567_8),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let r = Cursor {
            sort: Sort::Recent,
            snapshot: 5,
            sent_position: 3,
            score: None,
        };
        assert_eq!(Cursor::decode(&r.encode()), Some(r));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(""), None);
        let mixed = Cursor { score: None, ..c };
        assert_eq!(Cursor::decode(&mixed.encode()), None);
    }
}
