//! A decorator over the real event store for tests that count what a room actor asks of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use eventlog::store::{
    AppendError, AppendRequest, Appended, IdempotencyRecord, IdempotencyScope, IndexedField,
    RecordedEvent, StoreError,
};
use eventlog::{EventStore, PgEventStore};

/// The real store, counting the appends it was asked for, those it refused, and the events
/// read from room streams.
#[derive(Clone)]
pub(crate) struct Counted {
    inner: PgEventStore,
    pub(crate) appends: Arc<AtomicUsize>,
    pub(crate) refused: Arc<AtomicUsize>,
    /// Events returned by `read_stream` (an actor loading or catching up a room).
    pub(crate) read: Arc<AtomicUsize>,
}

impl Counted {
    pub(crate) fn new(inner: PgEventStore) -> Self {
        Counted {
            inner,
            appends: Arc::default(),
            refused: Arc::default(),
            read: Arc::default(),
        }
    }
}

impl EventStore for Counted {
    async fn append(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.append(req).await;
        if result.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn append_in_order(
        &self,
        reqs: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        self.appends.fetch_add(reqs.len(), Ordering::Relaxed);
        let results = self.inner.append_in_order(reqs).await;
        let refused = results.iter().filter(|r| r.is_err()).count();
        self.refused.fetch_add(refused, Ordering::Relaxed);
        results
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let page = self
            .inner
            .read_stream(stream_id, after_version, limit)
            .await;
        if let Ok(page) = &page {
            self.read.fetch_add(page.len(), Ordering::Relaxed);
        }
        page
    }

    async fn read_stream_of_types(
        &self,
        stream_id: &str,
        event_types: &[&str],
    ) -> Result<(Vec<RecordedEvent>, i64), StoreError> {
        self.inner
            .read_stream_of_types(stream_id, event_types)
            .await
    }

    async fn read_stream_by_field(
        &self,
        stream_id: &str,
        field: IndexedField,
        values: &[String],
        up_to_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .read_stream_by_field(stream_id, field, values, up_to_version)
            .await
    }

    async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after_position, limit).await
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        self.inner.head_position().await
    }

    async fn log_id(&self) -> Result<uuid::Uuid, StoreError> {
        self.inner.log_id().await
    }

    async fn lookup_idempotency(
        &self,
        scope: &IdempotencyScope,
        keys: &[String],
    ) -> Result<HashMap<String, IdempotencyRecord>, StoreError> {
        self.inner.lookup_idempotency(scope, keys).await
    }
}
