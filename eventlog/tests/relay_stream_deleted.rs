#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{append_events, assert_stream_equals_log, stop_when_caught_up, wait_for_stream};
use eventlog::testing::{TestDb, TestNats};
use eventlog::{EventStore, GroupCommitConfig, PgEventStore, Relay};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_deleted_mid_run_is_re_created_and_re_filled_from_the_log() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let mut config = nats.relay_config();
    config.poll_interval = Duration::from_millis(200);
    let js = async_nats::jetstream::new(nats.client.clone());

    append_events(&store, 4, 1000).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = Relay::new(db.pool.clone(), nats.client.clone(), config);
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    assert!(
        wait_for_stream(
            &nats.client,
            &nats.stream_name,
            1000,
            Duration::from_secs(20)
        )
        .await
    );

    let writer = {
        let store = store.clone();
        tokio::spawn(async move { append_events(&store, 4, 2000).await })
    };
    // Delete it while the relay is publishing the new events (not before, not after).
    assert!(
        wait_for_stream(
            &nats.client,
            &nats.stream_name,
            1100,
            Duration::from_secs(20)
        )
        .await
    );
    js.delete_stream(&nats.stream_name).await.unwrap();
    writer.await.unwrap();
    let head = store.head_position().await.unwrap();
    assert_eq!(head, 3000);
    stop_when_caught_up(
        &nats,
        &db,
        head,
        stop,
        task,
        "relay did not re-fill the stream",
    )
    .await;
    nats.cleanup().await;
}

#[tokio::test]
async fn a_purged_or_foreign_stream_is_deleted_re_created_and_re_filled() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let mut relay = Relay::new(db.pool.clone(), nats.client.clone(), nats.relay_config());
    let js = async_nats::jetstream::new(nats.client.clone());

    append_events(&store, 2, 300).await;
    assert_eq!(relay.publish_pending().await.unwrap(), 300);

    // Truncated: purge keeps last_sequence but drops the messages.
    js.get_stream(&nats.stream_name)
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    assert_eq!(relay.publish_pending().await.unwrap(), 300);
    assert_stream_equals_log(&nats.client, &nats.stream_name, &nats.prefix, &db.pool).await;

    // Ahead of the log: a message the log does not have.
    js.publish(format!("{}.events.x.y", nats.prefix), "junk".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(relay.publish_pending().await.unwrap(), 300);
    assert_stream_equals_log(&nats.client, &nats.stream_name, &nats.prefix, &db.pool).await;
    nats.cleanup().await;
}

/// A stream that looks consistent with the log (positions 1..n, n below the head) but was
/// filled by another log is replaced, not continued: its description names its log.
#[tokio::test]
async fn another_logs_stream_that_looks_consistent_is_replaced_and_re_filled() {
    let nats = TestNats::new().await.unwrap();
    let other = TestDb::new().await.unwrap();
    let other_store = PgEventStore::new(other.pool.clone(), GroupCommitConfig::default());
    append_events(&other_store, 1, 300).await;
    let mut other_relay = Relay::new(other.pool.clone(), nats.client.clone(), nats.relay_config());
    assert_eq!(other_relay.publish_pending().await.unwrap(), 300);

    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    append_events(&store, 2, 1000).await;
    let mut relay = Relay::new(db.pool.clone(), nats.client.clone(), nats.relay_config());
    assert_eq!(
        relay.publish_pending().await.unwrap(),
        1000,
        "re-published from position 1"
    );
    assert_stream_equals_log(&nats.client, &nats.stream_name, &nats.prefix, &db.pool).await;

    let js = async_nats::jetstream::new(nats.client.clone());
    let info = js
        .get_stream(&nats.stream_name)
        .await
        .unwrap()
        .cached_info()
        .clone();
    let log_id = eventlog::testing::log_id(&db.pool).await.unwrap();
    assert_ne!(
        log_id,
        eventlog::testing::log_id(&other.pool).await.unwrap()
    );
    assert_eq!(
        info.config.description,
        Some(eventlog::stream_description(log_id))
    );
    nats.cleanup().await;
}
