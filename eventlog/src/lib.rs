//! The durable event log (PostgreSQL), group commit, idempotency records and the JetStream relay.
//!
//! See `docs/adr` and docs/architecture.md D1-D3 and D8.

#[cfg(test)]
mod append_equivalence;
pub mod group_commit;
mod one_statement;
pub mod pool;
mod postgres;
pub mod recent;
pub mod reconnect;
pub mod relay;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use group_commit::{CommitMetrics, GroupCommitConfig};
pub use postgres::PgEventStore;
pub use recent::Recent;
pub use relay::{
    Relay, RelayConfig, StreamIdentityError, check_stream_identity, correlation_ids, stream_config,
    stream_description, subject_for,
};
pub use store::{
    AppendError, AppendRequest, Appended, CLIENT_MSG_ID_KEY, EventStore, ExpectedVersion,
    IdempotencyClaim, IdempotencyRecord, IdempotencyScope, IndexedField, NewEvent, RecordedEvent,
    StoreError,
};
