//! Which values of which events are personal data, how one is sealed in a payload (an
//! envelope naming its owner's key), and what stands in its place once that key is gone.

use crate::cipher::DataKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use uuid::Uuid;

/// What an erased text reads as, everywhere.
pub const ERASED_TEXT: &str = "[erased]";

/// Set (`true`) on a payload that had a value its key no longer opens: readers that keep a
/// copy of the text (the search index) leave such an event out.
pub const ERASED_MARK: &str = "erased";

/// Where in a payload a sealed value is.
#[derive(Clone, Copy, Debug)]
pub enum At {
    /// A top-level field.
    Field(&'static str),
    /// A field of every object of a top-level array.
    EachIn(&'static str, &'static str),
}

/// What an erased value becomes: it must still be valid for its type.
#[derive(Clone, Copy, Debug)]
pub enum Erased {
    /// [`ERASED_TEXT`].
    Text,
    /// A username no one can register ([`erased_username`]): unique, as usernames are.
    Username,
}

/// One personal value of one event type.
#[derive(Clone, Copy, Debug)]
pub struct SealedField {
    pub event_type: &'static str,
    pub at: At,
    pub erased: Erased,
}

/// Every personal value the log holds (issue #18): message bodies, names and attachment
/// names. The owner of each is given when sealing (a message's author, the user of a user
/// stream) and is named by its envelope, so opening needs nothing else.
pub const SEALED: &[SealedField] = &[
    SealedField {
        event_type: "MessageSent",
        at: At::Field("body"),
        erased: Erased::Text,
    },
    SealedField {
        event_type: "MessageSent",
        at: At::EachIn("attachments", "name"),
        erased: Erased::Text,
    },
    SealedField {
        event_type: "MessageEdited",
        at: At::Field("body"),
        erased: Erased::Text,
    },
    SealedField {
        event_type: "UserRegistered",
        at: At::Field("username"),
        erased: Erased::Username,
    },
    SealedField {
        event_type: "UserRegistered",
        at: At::Field("display_name"),
        erased: Erased::Text,
    },
    SealedField {
        event_type: "DisplayNameChanged",
        at: At::Field("display_name"),
        erased: Erased::Text,
    },
];

/// Usernames starting so are reserved for erased users.
pub const ERASED_USERNAME_PREFIX: &str = "erased-";

/// The username an erased user is left with: the prefix and the last 25 hex digits of the
/// id (random in a v7 UUID), 32 characters, valid and distinct.
pub fn erased_username(owner: Uuid) -> String {
    let hex = owner.simple().to_string();
    format!("{ERASED_USERNAME_PREFIX}{}", &hex[hex.len() - 25..])
}

/// Whether `event_type` has personal values.
pub fn has_sealed(event_type: &str) -> bool {
    SEALED.iter().any(|f| f.event_type == event_type)
}

/// A key: its owner and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId {
    pub owner: Uuid,
    pub version: i32,
}

const ENVELOPE: &str = "sealed";
const FORMAT: &str = "v1";

/// A parsed envelope: `{"sealed": "v1.<owner>.<version>.<nonce and ciphertext, base64url>"}`.
struct Envelope {
    key: KeyId,
    sealed: Vec<u8>,
}

fn envelope(value: &Value) -> Option<Envelope> {
    let Value::Object(obj) = value else {
        return None;
    };
    if obj.len() != 1 {
        return None;
    }
    let text = obj.get(ENVELOPE)?.as_str()?;
    let mut parts = text.splitn(4, '.');
    if parts.next()? != FORMAT {
        return None;
    }
    let owner = Uuid::parse_str(parts.next()?).ok()?;
    let version = parts.next()?.parse().ok()?;
    let sealed = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    Some(Envelope {
        key: KeyId { owner, version },
        sealed,
    })
}

fn aad(field: &SealedField, key: KeyId) -> Vec<u8> {
    let at = match field.at {
        At::Field(f) => f.to_owned(),
        At::EachIn(array, f) => format!("{array}[].{f}"),
    };
    format!(
        "{}/{at}/{}/{}",
        field.event_type,
        key.owner.simple(),
        key.version
    )
    .into_bytes()
}

/// Calls `f` with every personal value of `data` (an `event_type` payload).
fn visit(event_type: &str, data: &mut Value, mut f: impl FnMut(&SealedField, &mut Value)) {
    for field in SEALED.iter().filter(|s| s.event_type == event_type) {
        match field.at {
            At::Field(name) => {
                if let Some(v) = data.get_mut(name) {
                    f(field, v);
                }
            }
            At::EachIn(array, name) => {
                if let Some(Value::Array(items)) = data.get_mut(array) {
                    for item in items {
                        if let Some(v) = item.get_mut(name) {
                            f(field, v);
                        }
                    }
                }
            }
        }
    }
}

/// Seals every personal value of `data` (still plain text) under `key`, the key `id`.
pub fn seal(event_type: &str, data: &mut Value, id: KeyId, key: &DataKey) {
    visit(event_type, data, |field, v| {
        if let Value::String(text) = v {
            let sealed = key.seal(&aad(field, id), text.as_bytes());
            *v = serde_json::json!({
                ENVELOPE: format!(
                    "{FORMAT}.{}.{}.{}",
                    id.owner.simple(),
                    id.version,
                    URL_SAFE_NO_PAD.encode(sealed)
                )
            });
        }
    });
}

/// The keys the sealed values of `data` name.
pub fn keys_named(event_type: &str, data: &Value) -> Vec<KeyId> {
    let mut keys = Vec::new();
    for field in SEALED.iter().filter(|s| s.event_type == event_type) {
        match field.at {
            At::Field(name) => keys.extend(data.get(name).and_then(envelope).map(|e| e.key)),
            At::EachIn(array, name) => {
                if let Some(Value::Array(items)) = data.get(array) {
                    keys.extend(
                        items
                            .iter()
                            .filter_map(|i| i.get(name).and_then(envelope))
                            .map(|e| e.key),
                    );
                }
            }
        }
    }
    keys
}

/// What a reader knows of a key.
pub enum Known<'a> {
    Key(&'a DataKey),
    /// Shredded: the owner was erased.
    Shredded,
    /// Not looked up: the caller must load it first.
    Unknown,
}

/// A sealed value named a key the reader had not loaded.
#[derive(Debug, thiserror::Error)]
#[error("the key {0:?} was not loaded before opening")]
pub struct NotLoaded(pub KeyId);

/// Opens every sealed value of `data` with the keys `lookup` knows: plain text again, or what
/// stands for it once its key is shredded (and the payload is marked [`ERASED_MARK`]). Plain
/// values (written with sealing off, or before it existed) are left as they are.
pub fn open<'k>(
    event_type: &str,
    data: &mut Value,
    lookup: impl Fn(KeyId) -> Known<'k>,
) -> Result<(), NotLoaded> {
    if !has_sealed(event_type) {
        return Ok(());
    }
    let mut erased = false;
    let mut missing = None;
    visit(event_type, data, |field, v| {
        let Some(e) = envelope(v) else {
            return;
        };
        let opened = match lookup(e.key) {
            Known::Key(key) => key
                .open(&aad(field, e.key), &e.sealed)
                .and_then(|b| String::from_utf8(b).ok()),
            Known::Shredded => None,
            Known::Unknown => {
                missing = Some(e.key);
                return;
            }
        };
        *v = Value::String(match opened {
            Some(text) => text,
            None => {
                // A value its own key does not open was changed in the log; it reads as
                // erased rather than stopping every reader of the log.
                if matches!(lookup(e.key), Known::Key(_)) {
                    tracing::error!(key = ?e.key, event_type, "a sealed value does not open with its key");
                }
                erased = true;
                placeholder(field, e.key.owner)
            }
        });
    });
    if let Some(key) = missing {
        return Err(NotLoaded(key));
    }
    if erased && let Value::Object(obj) = data {
        obj.insert(ERASED_MARK.to_owned(), Value::Bool(true));
    }
    Ok(())
}

/// Replaces every sealed value of `data` with what stands for an erased one, without any key:
/// for readers that need no personal value (a room's state for deciding commands).
pub fn open_blind(event_type: &str, data: &mut Value) {
    let _ = open(event_type, data, |_| Known::Shredded);
    if let Value::Object(obj) = data {
        obj.remove(ERASED_MARK);
    }
}

fn placeholder(field: &SealedField, owner: Uuid) -> String {
    match field.erased {
        Erased::Text => ERASED_TEXT.to_owned(),
        Erased::Username => erased_username(owner),
    }
}

/// Whether [`open`] found a value of `data` erased.
pub fn is_erased(data: &Value) -> bool {
    data.get(ERASED_MARK).and_then(Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn sent() -> Value {
        json!({"message_id": "m", "seq": 1, "sender_id": "s", "body": "hello there",
               "attachments": [{"name": "cat.png", "size": 3}, {"name": "dog.png", "size": 4}]})
    }

    #[test]
    fn sealed_values_hide_their_text_and_open_back_with_the_key() {
        let key = DataKey::generate();
        let id = KeyId {
            owner: Uuid::now_v7(),
            version: 1,
        };
        let mut data = sent();
        seal("MessageSent", &mut data, id, &key);
        let text = data.to_string();
        for secret in ["hello there", "cat.png", "dog.png"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(keys_named("MessageSent", &data), vec![id; 3]);
        open("MessageSent", &mut data, |k| {
            assert_eq!(k, id);
            Known::Key(&key)
        })
        .unwrap();
        assert_eq!(data, sent());
        assert!(!is_erased(&data));
    }

    #[test]
    fn a_shredded_key_leaves_placeholders_and_marks_the_payload() {
        let owner = Uuid::now_v7();
        let id = KeyId { owner, version: 2 };
        let mut data = sent();
        seal("MessageSent", &mut data, id, &DataKey::generate());
        open("MessageSent", &mut data, |_| Known::Shredded).unwrap();
        assert_eq!(data["body"], ERASED_TEXT);
        assert_eq!(data["attachments"][1]["name"], ERASED_TEXT);
        assert_eq!(data["attachments"][1]["size"], 4);
        assert!(is_erased(&data));

        let mut user = json!({"user_id": owner, "username": "alice", "display_name": "Alice"});
        seal("UserRegistered", &mut user, id, &DataKey::generate());
        open_blind("UserRegistered", &mut user);
        assert_eq!(user["username"], erased_username(owner));
        assert_eq!(user["display_name"], ERASED_TEXT);
        assert!(!is_erased(&user));
    }

    #[test]
    fn an_unloaded_key_is_an_error_and_plain_payloads_pass_through() {
        let mut data = sent();
        seal(
            "MessageSent",
            &mut data,
            KeyId {
                owner: Uuid::now_v7(),
                version: 1,
            },
            &DataKey::generate(),
        );
        assert!(open("MessageSent", &mut data, |_| Known::Unknown).is_err());
        let mut plain = sent();
        open("MessageSent", &mut plain, |_| Known::Unknown).unwrap();
        assert_eq!(plain, sent());
    }

    #[test]
    fn a_value_moved_to_another_field_or_owner_does_not_open() {
        let key = DataKey::generate();
        let id = KeyId {
            owner: Uuid::now_v7(),
            version: 1,
        };
        let mut data = sent();
        seal("MessageSent", &mut data, id, &key);
        let mut edit = json!({"message_id": "m", "body": data["body"].clone()});
        open("MessageEdited", &mut edit, |_| Known::Key(&key)).unwrap();
        assert_eq!(edit["body"], ERASED_TEXT);
    }

    #[test]
    fn erased_usernames_are_valid_and_distinct() {
        let a = erased_username(Uuid::now_v7());
        let b = erased_username(Uuid::now_v7());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
