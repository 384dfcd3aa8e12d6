//! Every read of the event log by the projector goes through here, and through the log's
//! port ([`eventlog::EventStore`]): the one place that knows how the log is reached.

use async_nats::jetstream::stream;
use eventlog::{EventStore as _, PgEventStore, RecordedEvent, StoreError, StreamIdentityError};
use sqlx::PgPool;

/// Up to `limit` events after position `after`, in position order.
pub(crate) async fn read_after(
    log: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    PgEventStore::reader(log.clone())
        .read_all(after, limit)
        .await
}

/// Fails unless the JetStream stream `info` carries this log's events (a stream left over from
/// another log would feed that log's events into the projections).
pub(crate) async fn check_stream_identity(
    info: &stream::Info,
    log: &PgPool,
) -> Result<(), StreamIdentityError> {
    eventlog::check_stream_identity(info, &PgEventStore::reader(log.clone())).await
}
