//! Idempotency keys of commands: what a key is, in which scope, and what ties it to one
//! exact request (its fingerprint).

use eventlog::IdempotencyScope;
use events::{AttachmentId, MessageId, UserId};
use sha2::{Digest, Sha256};

/// An idempotency key claimed by a command: a retry with the same key returns the
/// original response and appends nothing.
///
/// Two kinds, kept in PostgreSQL either way (docs/architecture.md D8):
/// * an `Idempotency-Key` header: `idempotency_keys` records which events the command
///   appended, in the append that carries it; a retry reads those events back;
/// * a message's `client_msg_id` (`from_message`): the room's own `MessageSent` event
///   records it, so the event log is the record. The actor answers a retry from that
///   event, and the append's expected version guarantees that no other writer used the
///   key since the state the actor decided against (module docs).
#[derive(Clone, Debug)]
pub struct Idem {
    pub scope: IdempotencyScope,
    pub key: String,
    pub fingerprint: String,
    /// The key is [`message_key`] of a `client_msg_id` and the fingerprint is
    /// [`message_fingerprint`] of the message.
    pub from_message: bool,
}

/// The idempotency key (in the room's scope) of a message sent with `client_msg_id`.
pub fn message_key(sender: UserId, client_msg_id: &str) -> String {
    format!("{sender}:msg:{client_msg_id}")
}

/// What ties a `client_msg_id` to one exact message: its (trimmed) body and `reply_to`.
pub fn message_fingerprint(
    body: &str,
    reply_to: Option<MessageId>,
    attachments: &[AttachmentId],
) -> String {
    let reply = reply_to.map(|r| r.to_string()).unwrap_or_default();
    if attachments.is_empty() {
        // As before attachments existed: the messages stored then fingerprint the same.
        return fingerprint(&[body, &reply]);
    }
    let ids: Vec<String> = attachments.iter().map(ToString::to_string).collect();
    fingerprint(&[body, &reply, &ids.join(",")])
}

pub(crate) fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// SHA-256 over the length-prefixed parts, in hex.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("{:x}", h.finalize())
}
