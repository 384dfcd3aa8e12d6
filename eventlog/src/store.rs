//! The event-store contract: the types every caller codes against and the [`EventStore`] trait.
//!
//! PostgreSQL is the implementation today ([`crate::PgEventStore`]); the trait exists so another
//! log (EventStoreDB/KurrentDB) can be put behind the same contract tests (design.md decision 1).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event to append. Versions and positions are assigned by the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

/// Optimistic concurrency check on the stream's last version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream has no events yet.
    NoStream,
    /// The stream's last version is exactly this (versions start at 1).
    Exact(i64),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (0 = no events) satisfies this expectation.
    pub fn matches(&self, current: i64) -> bool {
        match *self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(v) => current == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// Claim an idempotency key in the same transaction as the events (design.md decision 8).
///
/// `response` should be a JSON object; when stored, the store sets `response["position"]` to the
/// position of the LAST event of the request (if the request has events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub status: u16,
    pub response: serde_json::Value,
}

/// A response stored under an idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub status: u16,
    pub response: serde_json::Value,
}

/// One command's worth of events for one stream, plus its idempotency claims.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    pub stream_id: String,
    pub stream_type: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub idempotency: Vec<IdempotencyClaim>,
}

/// The outcome of an accepted [`AppendRequest`].
///
/// For a request without events the ranges are empty: `first_version == last_version + 1` with
/// `last_version` the stream's current version, and `first_position == last_position + 1` with
/// `last_position` the log head at that moment (so `last_position` is always a valid
/// read-your-writes `min_position`).
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    pub first_version: i64,
    pub last_version: i64,
    pub first_position: i64,
    pub last_position: i64,
    /// The stored responses of the claims (position filled in), in the order of the claims.
    pub responses: Vec<serde_json::Value>,
}

#[derive(thiserror::Error, Debug)]
pub enum AppendError {
    /// Stale expected version: nothing was appended.
    #[error("wrong expected version for stream {stream_id}: expected {expected}, actual {actual}")]
    Conflict {
        stream_id: String,
        expected: String,
        actual: i64,
    },
    /// A claim's (scope, key) exists already (or twice in the batch): nothing was appended for
    /// this request.
    #[error("idempotency key already used: {scope}/{key}")]
    DuplicateIdempotencyKey { scope: String, key: String },
    /// The store is shutting down; the request was not (or not known to be) appended.
    #[error("event store is shutting down")]
    ShuttingDown,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// An event as stored in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_type: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub data: serde_json::Value,
}

/// The event log.
pub trait EventStore: Send + Sync + 'static {
    /// Appends one request (through group commit). Returns only after the transaction committed.
    fn append(
        &self,
        req: AppendRequest,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send;

    /// Events of one stream with `version > after_version`, in version order, at most `limit`.
    fn read_stream(
        &self,
        stream_id: &str,
        after_version: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, sqlx::Error>> + Send;

    /// Events with `position > after_position`, in position order, at most `limit`.
    fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, sqlx::Error>> + Send;

    /// The position of the last committed event (0 when the log is empty).
    fn head_position(&self) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;

    /// Stored responses for the given keys in `scope` (missing keys are absent from the map).
    fn lookup_idempotency(
        &self,
        scope: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, StoredResponse>, sqlx::Error>> + Send;
}
