//! Every read of the event log by the projector goes through here: the one place that knows
//! how the log is reached (for now eventlog's PostgreSQL functions).

use async_nats::jetstream::stream;
use eventlog::RecordedEvent;
use sqlx::PgPool;

/// Up to `limit` events after position `after`, in position order.
pub(crate) async fn read_after(
    log: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    eventlog::read_all(log, after, limit).await
}

/// Fails unless the JetStream stream `info` carries this log's events (a stream left over from
/// another log would feed that log's events into the projections).
pub(crate) async fn check_stream_identity(info: &stream::Info, log: &PgPool) -> anyhow::Result<()> {
    eventlog::check_stream_identity(info, log).await
}
