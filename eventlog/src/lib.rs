//! The durable event log (PostgreSQL), group commit, idempotency records and the JetStream relay.
//!
//! See `docs/adr` and design.md decisions 1-3 and 8.

pub mod group_commit;
mod one_statement;
pub mod postgres;
pub mod recent;
pub mod relay;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use group_commit::{CommitMetrics, GroupCommitConfig};
pub use postgres::{
    APPENDED_CHANNEL, BEGIN_APPEND, PgEventStore, append_in_tx, append_locked, head_position,
    log_id, lookup_idempotency, migrate, pool_options, read_all, read_stream,
};
pub use recent::Recent;
pub use relay::{
    Relay, RelayConfig, check_stream_identity, stream_config, stream_description, subject_for,
};
pub use store::{
    AppendError, AppendRequest, Appended, EventStore, ExpectedVersion, IdempotencyClaim, NewEvent,
    RecordedEvent, StoredResponse,
};
