//! Every read of the event log by the projector goes through here, and through the log's
//! port ([`eventlog::EventStore`]): the one place that knows how the log is reached.

use async_nats::jetstream::stream;
use eventlog::{EventStore as _, PgEventStore, RecordedEvent, StoreError, StreamIdentityError};

/// Up to `limit` events after position `after`, in position order.
pub(crate) async fn read_after(
    log: &PgEventStore,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    log.read_all(after, limit).await
}

/// Fails unless the JetStream stream `info` carries this log's events (a stream left over from
/// another log would feed that log's events into the projections).
pub(crate) async fn check_stream_identity(
    info: &stream::Info,
    log: &PgEventStore,
) -> Result<(), StreamIdentityError> {
    eventlog::check_stream_identity(info, log).await
}

/// The log's head: the position of the last event appended (0 when empty).
pub(crate) async fn head(log: &PgEventStore) -> Result<i64, StoreError> {
    log.head_position().await
}
