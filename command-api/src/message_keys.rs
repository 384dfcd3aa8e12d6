//! The `client_msg_id`s a room actor remembers: the newest ones, each with the stream
//! version of the `MessageSent` it produced. Bounded; a retry of a key it has forgotten is
//! refused by the log's unique index, and the actor then looks there (ADR 18).

use std::collections::{HashMap, VecDeque};

/// Hashes of message keys → versions, oldest first in `order`.
#[derive(Clone, Debug, Default)]
pub struct MessageKeys {
    versions: HashMap<u64, i64>,
    order: VecDeque<u64>,
}

impl MessageKeys {
    /// The version of the message the key produced, if remembered.
    pub fn get(&self, hash: u64) -> Option<i64> {
        self.versions.get(&hash).copied()
    }

    pub fn insert(&mut self, hash: u64, version: i64) {
        if self.versions.insert(hash, version).is_none() {
            self.order.push_back(hash);
        }
    }

    /// Forgets the oldest keys until at most `keep` remain.
    pub fn trim(&mut self, keep: usize) {
        while self.versions.len() > keep {
            let Some(hash) = self.order.pop_front() else {
                break;
            };
            self.versions.remove(&hash);
        }
    }

    /// Forgets everything, as before the room was read.
    pub fn clear(&mut self) {
        *self = MessageKeys::default();
    }

    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest() {
        let mut keys = MessageKeys::default();
        for h in 0..10 {
            keys.insert(h, h as i64 + 1);
        }
        keys.insert(9, 10);
        keys.trim(4);
        assert_eq!(keys.len(), 4);
        assert_eq!(keys.get(9), Some(10));
        assert_eq!(keys.get(6), Some(7));
        assert_eq!(keys.get(5), None);
        keys.clear();
        assert!(keys.is_empty());
    }
}
