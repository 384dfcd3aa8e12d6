//! The event-store contract: the types every caller codes against and the [`EventStore`] trait.
//!
//! PostgreSQL is the implementation today ([`crate::PgEventStore`]); the trait exists so another
//! log (EventStoreDB/KurrentDB) can be put behind the same contract tests (docs/architecture.md D1).

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

/// Claim an idempotency key in the same transaction as the events (architecture.md, D8).
///
/// The record keeps what the request appended (its positions), never a rendering of it: a
/// retry reads those events back and is answered exactly as the first attempt was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    pub key: String,
    /// Ties the key to one exact request: the same key with another fingerprint is a misuse.
    pub fingerprint: String,
}

/// A field of event payloads the log indexes (see the migrations `*_payload_indexes*`), so
/// a stream's events that carry given values in it are found without reading the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexedField {
    /// `message_id`: every event about one message.
    MessageId,
    /// `client_msg_id`: the message a client's key produced (indexed with the stream, and
    /// unique per stream and sender: [`CLIENT_MSG_ID_KEY`]).
    ClientMsgId,
}

/// The unique index that refuses a second `MessageSent` with the same `client_msg_id` from
/// the same sender in a stream (see [`StoreError::violates`]).
pub const CLIENT_MSG_ID_KEY: &str = "events_client_msg_id_key";

/// The namespace of idempotency keys: keys are unique within a scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyScope(String);

impl IdempotencyScope {
    /// The keys of commands on one stream (e.g. a room's), looked up together by its writer.
    pub fn stream(stream_id: &str) -> Self {
        IdempotencyScope(format!("stream:{stream_id}"))
    }

    /// The keys of one actor's commands that have no stream yet (e.g. creating a room).
    pub fn actor(actor: uuid::Uuid) -> Self {
        IdempotencyScope(format!("actor:{actor}"))
    }

    /// A scope by its stored name.
    pub fn named(name: impl Into<String>) -> Self {
        IdempotencyScope(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an idempotency key's record says: the request it belongs to (fingerprint) and the
/// positions of the events it appended (`first_position > last_position` when it appended
/// none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub first_position: i64,
    pub last_position: i64,
}

impl IdempotencyRecord {
    /// How many events the request appended.
    pub fn event_count(&self) -> i64 {
        (self.last_position - self.first_position + 1).max(0)
    }
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
    DuplicateIdempotencyKey {
        scope: IdempotencyScope,
        key: String,
    },
    /// The store is shutting down; the request was not (or not known to be) appended.
    #[error("event store is shutting down")]
    ShuttingDown,
    /// The store failed; the request was not (or not known to be) appended.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A failure of the event store itself (as opposed to a rejected append).
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    /// The store cannot be reached now (connection refused or lost, no connection free in
    /// time): worth retrying later, a 503 at the edge.
    #[error("the event store is unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// The store answered with an error.
    #[error("an event store query failed")]
    Query(#[source] sqlx::Error),
}

impl StoreError {
    /// Whether retrying later may succeed without anything else changing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// Whether the store refused the statement because it would break the unique
    /// `constraint` (e.g. [`CLIENT_MSG_ID_KEY`]).
    pub fn violates(&self, constraint: &str) -> bool {
        match self {
            StoreError::Query(sqlx::Error::Database(d)) => {
                d.is_unique_violation() && d.constraint() == Some(constraint)
            }
            _ => false,
        }
    }

    /// Whether a connection broke under the statement (rather than none being had in
    /// time): the connection was stale, e.g. idle across a restart of PostgreSQL, and the
    /// same statement on another connection may well succeed at once.
    pub fn is_broken_connection(&self) -> bool {
        match self {
            StoreError::Unavailable(e) => crate::pool::is_broken_connection(e),
            StoreError::Query(_) => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_connection_error(&e) {
            // Pooled connections idle since now may be as dead as this one.
            crate::pool::connection_failed();
            StoreError::Unavailable(e)
        } else {
            StoreError::Query(e)
        }
    }
}

impl From<sqlx::Error> for AppendError {
    fn from(e: sqlx::Error) -> Self {
        AppendError::Store(e.into())
    }
}

/// Whether `e` says the database could not be reached or dropped the connection, rather than
/// rejecting a statement: pool time-outs, I/O and TLS errors, and SQLSTATE classes 08
/// (connection exception) and 57P (operator intervention: shutdown, cannot connect now).
pub fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
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

/// The event log: the one port every caller codes against.
pub trait EventStore: Send + Sync + 'static {
    /// Appends one request (through group commit). Returns only after the transaction committed.
    fn append(
        &self,
        req: AppendRequest,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send;

    /// Appends `reqs` in their order (through group commit), one result per request, in
    /// order: a request that expects the version an earlier one leaves finds it committed, in
    /// the same batch or an earlier one. Not the same as appending each concurrently, whose
    /// requests may reach the committer in any order.
    fn append_in_order(
        &self,
        reqs: Vec<AppendRequest>,
    ) -> impl Future<Output = Vec<Result<Appended, AppendError>>> + Send;

    /// Events of one stream with `version > after_version`, in version order, at most `limit`.
    fn read_stream(
        &self,
        stream_id: &str,
        after_version: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The events of one stream whose type is one of `event_types`, in version order, and
    /// the stream's version (0: no such stream), both as of one snapshot: e.g. a room's
    /// membership "as of version V" without reading its messages.
    fn read_stream_of_types(
        &self,
        stream_id: &str,
        event_types: &[&str],
    ) -> impl Future<Output = Result<(Vec<RecordedEvent>, i64), StoreError>> + Send;

    /// The events of one stream with `version <= up_to_version` whose payload `field` is one
    /// of `values`, in version order: an index lookup, however long the stream.
    fn read_stream_by_field(
        &self,
        stream_id: &str,
        field: IndexedField,
        values: &[String],
        up_to_version: i64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Events with `position > after_position`, in position order, at most `limit`.
    fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The position of the last committed event (0 when the log is empty).
    fn head_position(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// The log's identity, created with it: a transport or a projection that carries events
    /// of another log (a dropped and re-created database) can tell by it.
    fn log_id(&self) -> impl Future<Output = Result<uuid::Uuid, StoreError>> + Send;

    /// The records of the given keys in `scope` (missing keys are absent from the map).
    fn lookup_idempotency(
        &self,
        scope: &IdempotencyScope,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, IdempotencyRecord>, StoreError>> + Send;
}
