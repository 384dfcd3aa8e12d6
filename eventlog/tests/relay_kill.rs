#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{append_events, append_events_paced, assert_stream_equals_log, stop_when_caught_up};
use eventlog::testing::{TestDb, TestNats};
use eventlog::{EventStore, GroupCommitConfig, PgEventStore, Recent, Relay, RelayConfig};
use rand::Rng;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_relay_ten_times_while_appending_loses_nothing_and_duplicates_nothing() {
    kill_ten_times(None).await;
}

/// The same as command-api runs it: the relay publishes this process's commits from memory
/// (`Recent`) and the committer has a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_relay_that_publishes_from_memory_ten_times_loses_nothing() {
    kill_ten_times(Some(Recent::default())).await;
}

fn relay(db: &TestDb, nats: &TestNats, config: RelayConfig, recent: &Option<Recent>) -> Relay {
    Relay::new(db.pool.clone(), nats.client.clone(), config).with_recent(recent.clone())
}

async fn kill_ten_times(recent: Option<Recent>) {
    let started = Instant::now();
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let store = PgEventStore::new(
        db.pool.clone(),
        GroupCommitConfig {
            dedicated_thread: recent.is_some(),
            recent: recent.clone(),
            ..GroupCommitConfig::default()
        },
    );
    let mut config = nats.relay_config();
    config.batch = 200;
    config.poll_interval = Duration::from_millis(200);

    // 10 writers x 50 appends of 10 events, each writer pausing 40 ms after an append: the
    // appends take at least 2 s, about as long as the ten kills (10-400 ms apart), however
    // fast the machine commits.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            append_events_paced(&store, 10, 5000, Duration::from_millis(40)).await
        })
    };

    let mut progress = Vec::new();
    for kill in 0..10 {
        let relay = relay(&db, &nats, config.clone(), &recent);
        let task = tokio::spawn(relay.run(std::future::pending()));
        let after = rand::rng().random_range(10..400u64);
        tokio::time::sleep(Duration::from_millis(after)).await;
        task.abort();
        let outcome = task.await;
        assert!(
            outcome.as_ref().is_err_and(|e| e.is_cancelled()),
            "relay {kill} ended on its own: {outcome:?}"
        );
        let js = async_nats::jetstream::new(nats.client.clone());
        if let Ok(stream) = js.get_stream(&nats.stream_name).await {
            let published = stream.cached_info().state.last_sequence;
            let head = store.head_position().await.unwrap();
            eprintln!("kill {kill} after {after} ms: stream at {published}, log head {head}");
            progress.push(published);
        }
    }
    writer.await.unwrap();
    let head = store.head_position().await.unwrap();
    assert_eq!(head, 5000);
    // The kills did land while the relay was publishing (not only while it stood by).
    progress.dedup();
    assert!(
        progress.len() >= 3,
        "the relay made progress between too few kills: {progress:?}"
    );

    // Run until caught up.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = relay(&db, &nats, config.clone(), &recent);
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    stop_when_caught_up(&nats, &db, head, stop, task, "relay did not catch up").await;
    eprintln!("relay kill test took {:?}", started.elapsed());
    nats.cleanup().await;
}

/// Two processes commit to one log; the active relay holds only its own process's commits in
/// memory and must read the other's from the log, interleaved, in position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_publishing_from_memory_also_publishes_another_process_commits() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let recent = Recent::default();
    let ours = PgEventStore::new(
        db.pool.clone(),
        GroupCommitConfig {
            recent: Some(recent.clone()),
            ..GroupCommitConfig::default()
        },
    );
    let theirs = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let mut config = nats.relay_config();
    config.poll_interval = Duration::from_millis(200);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay(&db, &nats, config, &Some(recent)).run(async move {
        let _ = stopped.await;
    }));
    tokio::join!(
        append_events(&ours, 4, 2000),
        append_events(&theirs, 4, 2000)
    );
    let head = ours.head_position().await.unwrap();
    assert_eq!(head, 4000);
    stop_when_caught_up(&nats, &db, head, stop, task, "relay did not catch up").await;
    nats.cleanup().await;
}

#[tokio::test]
async fn publish_pending_publishes_everything_committed_and_is_idempotent() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let mut relay = Relay::new(db.pool.clone(), nats.client.clone(), nats.relay_config());

    assert_eq!(relay.publish_pending().await.unwrap(), 0);
    append_events(&store, 3, 2400).await;
    let n = relay.publish_pending().await.unwrap();
    assert_eq!(n, 2400);
    assert_eq!(relay.publish_pending().await.unwrap(), 0);
    append_events(&store, 1, 7).await;
    assert_eq!(relay.publish_pending().await.unwrap(), 7);
    assert_stream_equals_log(&nats.client, &nats.stream_name, &nats.prefix, &db.pool).await;
    nats.cleanup().await;
}

#[test]
fn subjects_are_sanitised() {
    assert_eq!(
        eventlog::subject_for("chat", "room", "abc"),
        "chat.events.room.abc"
    );
    assert_eq!(
        eventlog::subject_for("chat", "ro.om", "a.b*c> d\te"),
        "chat.events.ro_om.a_b_c__d_e"
    );
    assert_eq!(
        eventlog::subject_for("chat", "room", ""),
        "chat.events.room._"
    );
}

#[tokio::test]
async fn a_test_nats_dropped_without_cleanup_still_deletes_its_stream() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    append_events(&store, 1, 3).await;
    let mut relay = Relay::new(db.pool.clone(), nats.client.clone(), nats.relay_config());
    assert_eq!(relay.publish_pending().await.unwrap(), 3);
    let client = nats.client.clone();
    let name = nats.stream_name.clone();
    drop(nats);
    let js = async_nats::jetstream::new(client);
    assert!(js.get_stream(&name).await.is_err());
}
