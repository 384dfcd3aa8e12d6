//! How domain events are named and versioned when stored.
//!
//! The stored `event_type` of each variant is written out by hand (`#[serde(rename)]`)
//! and pinned by a test, so renaming a Rust variant never changes what is stored.

use serde::{Serialize, de::DeserializeOwned};

/// The current schema version of every event type in this crate. Bump it per type
/// (and add an upcaster in [`upcast`]) when a payload changes shape.
pub const SCHEMA_VERSION: i32 = 1;

/// An event that can be written to and read from the log.
pub trait StoredEvent: Serialize + DeserializeOwned + Sized {
    /// The type of stream these events live in (`room`, `user`).
    const STREAM_TYPE: &'static str;

    /// The stored type name and the payload, as written to the log.
    fn to_stored(&self) -> Result<(String, i32, serde_json::Value), serde_json::Error> {
        let value = serde_json::to_value(self)?;
        let serde_json::Value::Object(mut obj) = value else {
            return Err(serde::ser::Error::custom(
                "event did not serialize to an object",
            ));
        };
        let event_type = match obj.remove("type") {
            Some(serde_json::Value::String(t)) => t,
            _ => return Err(serde::ser::Error::custom("event without a type tag")),
        };
        let data = obj.remove("data").unwrap_or(serde_json::Value::Null);
        Ok((event_type, SCHEMA_VERSION, data))
    }

    /// Reads an event back from its stored type name, schema version and payload.
    fn from_stored(
        event_type: &str,
        schema_version: i32,
        data: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        let data = upcast(event_type, schema_version, data);
        serde_json::from_value(serde_json::json!({ "type": event_type, "data": data }))
    }
}

/// Brings an older payload up to the current schema. Every type is at version 1 today.
pub fn upcast(
    _event_type: &str,
    _schema_version: i32,
    data: serde_json::Value,
) -> serde_json::Value {
    data
}
