//! A room actor decides a round of queued commands at once and appends one request per
//! command, each expecting the version the one before it leaves. Those requests must reach
//! the log in the order they were decided: one arriving early fails its expected version,
//! and it and every command after it are decided again (and, after `MAX_ATTEMPTS`, refused as
//! busy) although nothing else wrote to the room.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use command_api::rooms::RoomCommands;
use eventlog::store::{
    AppendError, AppendRequest, Appended, IdempotencyRecord, IdempotencyScope, IndexedField,
    RecordedEvent, StoreError,
};
use eventlog::testing::TestDb;
use eventlog::{EventStore, GroupCommitConfig, PgEventStore};
use events::UserId;

use super::replicas::{create_room, keyed, send, submission};

/// The real store, counting the appends it was asked for and those it refused.
#[derive(Clone)]
struct Counted {
    inner: PgEventStore,
    appends: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
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
        self.inner
            .read_stream(stream_id, after_version, limit)
            .await
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

/// Commands queued at once in one room: several full rounds.
const SENDS: usize = 2_000;

#[tokio::test]
async fn a_round_of_commands_in_one_room_is_appended_in_order_and_once() {
    let db = TestDb::new().await.unwrap();
    vault::migrate(&db.pool).await.unwrap();
    let store = Counted {
        inner: PgEventStore::new(db.pool.clone(), GroupCommitConfig::default()),
        appends: Arc::default(),
        refused: Arc::default(),
    };
    let commands = RoomCommands::new(
        store.clone(),
        Arc::new(vault::Keyring::new(db.pool.clone(), true)),
    );
    let owner = UserId::new();
    let room = create_room(&commands, owner, "busy").await;

    // Keyed and unkeyed sends, all queued before the actor takes its next round.
    let sends = (0..SENDS).map(|i| {
        let commands = commands.clone();
        async move {
            let sub = if i % 2 == 0 {
                keyed(owner, room, "hello", &format!("k{i}"))
            } else {
                submission(owner, send("hello", None), None)
            };
            commands.submit(room, sub).await
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }

    assert_eq!(
        store.refused.load(Ordering::Relaxed),
        0,
        "nothing else writes to the room: no append may fail its expected version"
    );
    assert_eq!(
        store.appends.load(Ordering::Relaxed),
        SENDS + 1,
        "each command is decided and appended once"
    );
    // The room's creation (the room, its owner joining) and one event per message.
    let head = store.head_position().await.unwrap();
    assert_eq!(head, 2 + SENDS as i64);
}
