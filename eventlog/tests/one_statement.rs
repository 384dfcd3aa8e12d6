//! Group commit's one-statement path (ADR 8): batches whose requests state what they expect
//! of their streams are appended by one statement; anything it cannot decide falls back to
//! the locked path, which tells each request what went wrong.

#![allow(clippy::unwrap_used)]

mod common;

use common::{claim, count_events, request};
use eventlog::testing::TestDb;
use eventlog::{
    AppendError, CommitMetrics, EventStore, ExpectedVersion, GroupCommitConfig, IdempotencyScope,
    PgEventStore,
};

/// A store whose committer records which path each transaction took.
fn store_with_metrics(db: &TestDb, dedicated_thread: bool) -> (PgEventStore, CommitMetrics) {
    let metrics = CommitMetrics::register(&prometheus::Registry::new()).unwrap();
    let store = PgEventStore::new(
        db.pool.clone(),
        GroupCommitConfig {
            metrics: Some(metrics.clone()),
            dedicated_thread,
            ..GroupCommitConfig::default()
        },
    );
    (store, metrics)
}

/// (transactions by one statement, transactions by the locked path)
fn paths(m: &CommitMetrics) -> (u64, u64) {
    let count = |step: &str| m.seconds.with_label_values(&[step]).get_sample_count();
    (count("one_statement"), count("begin_and_lock"))
}

#[tokio::test]
async fn concurrent_appends_with_stated_versions_take_one_statement_and_stay_gapless() {
    for dedicated_thread in [false, true] {
        let db = TestDb::new().await.unwrap();
        let (store, metrics) = store_with_metrics(&db, dedicated_thread);

        // 20 writers, each creating its stream and then chaining 30 appends on it.
        let writers = (0..20).map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("room-{w}");
                let mut version = 0;
                for i in 0..31 {
                    let expected = if i == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(version)
                    };
                    let a = store.append(request(&stream, expected, 2)).await.unwrap();
                    assert_eq!(a.first_version, version + 1);
                    assert_eq!(a.last_position - a.first_position, 1);
                    version = a.last_version;
                }
                version
            })
        });
        for w in futures::future::join_all(writers).await {
            assert_eq!(w.unwrap(), 62);
        }

        let events = store.read_all(0, 10_000).await.unwrap();
        assert_eq!(events.len(), 20 * 31 * 2);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(
                e.position,
                i as i64 + 1,
                "positions are gapless and ordered"
            );
        }
        assert_eq!(store.head_position().await.unwrap(), 1240);
        let (one, locked) = paths(&metrics);
        assert!(one > 0, "no transaction took one statement");
        assert_eq!(locked, 0, "no append needed the locked path");
    }
}

#[tokio::test]
async fn an_expected_version_ahead_of_the_stream_is_a_conflict_not_a_gap() {
    let db = TestDb::new().await.unwrap();
    let (store, metrics) = store_with_metrics(&db, true);
    store
        .append(request("room-1", ExpectedVersion::NoStream, 2))
        .await
        .unwrap();

    // Version 5 does not exist: appending 6 would leave a hole at 3..5.
    let err = store
        .append(request("room-1", ExpectedVersion::Exact(5), 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Conflict { actual: 2, .. }),
        "{err:?}"
    );
    assert_eq!(count_events(&db.pool).await, 2);
    assert_eq!(store.head_position().await.unwrap(), 2);
    assert_eq!(
        paths(&metrics),
        (1, 1),
        "tried one statement, then the locked path"
    );

    // The stream goes on where it is.
    let ok = store
        .append(request("room-1", ExpectedVersion::Exact(2), 1))
        .await
        .unwrap();
    assert_eq!((ok.last_version, ok.last_position), (3, 3));
}

#[tokio::test]
async fn a_stale_expected_version_falls_back_and_rejects_only_its_own_request() {
    let db = TestDb::new().await.unwrap();
    let (store, metrics) = store_with_metrics(&db, true);
    store
        .append(request("a", ExpectedVersion::NoStream, 3))
        .await
        .unwrap();
    // A stale and a fresh request, sent together (one batch when the committer is busy,
    // two otherwise: the outcome is the same).
    let (stale, fresh, other) = tokio::join!(
        store.append(request("a", ExpectedVersion::Exact(1), 1)),
        store.append(request("b", ExpectedVersion::NoStream, 2)),
        store.append(request("a", ExpectedVersion::NoStream, 1)),
    );
    assert!(
        matches!(stale, Err(AppendError::Conflict { actual: 3, .. })),
        "{stale:?}"
    );
    assert!(
        matches!(other, Err(AppendError::Conflict { actual: 3, .. })),
        "{other:?}"
    );
    let fresh = fresh.unwrap();
    assert_eq!((fresh.first_version, fresh.last_version), (1, 2));
    assert_eq!((fresh.first_position, fresh.last_position), (4, 5));
    assert_eq!(count_events(&db.pool).await, 5);
    let (_, locked) = paths(&metrics);
    assert!(locked >= 1, "the conflicts were decided on the locked path");
}

#[tokio::test]
async fn claims_in_one_statement_store_their_position_and_a_retry_appends_nothing() {
    let db = TestDb::new().await.unwrap();
    let (store, metrics) = store_with_metrics(&db, true);
    store
        .append(request("room-0", ExpectedVersion::NoStream, 4))
        .await
        .unwrap();

    let mut req = request("room-1", ExpectedVersion::NoStream, 3);
    req.idempotency.push(claim("user-1", "msg-1"));
    let appended = store.append(req).await.unwrap();
    assert_eq!(appended.last_position, 7);
    assert_eq!(paths(&metrics), (2, 0));

    let found = store
        .lookup_idempotency(&IdempotencyScope::named("user-1"), &["msg-1".to_owned()])
        .await
        .unwrap();
    let stored = &found["msg-1"];
    assert_eq!(
        (
            stored.fingerprint.as_str(),
            stored.first_position,
            stored.last_position
        ),
        ("fp-msg-1", 5, 7)
    );

    // The retry states the right version and still must not append.
    let mut retry = request("room-1", ExpectedVersion::Exact(3), 3);
    retry.idempotency.push(claim("user-1", "msg-1"));
    let err = store.append(retry).await.unwrap_err();
    assert!(
        matches!(&err, AppendError::DuplicateIdempotencyKey { key, .. } if key == "msg-1"),
        "{err:?}"
    );
    assert_eq!(count_events(&db.pool).await, 7);
    assert_eq!(store.head_position().await.unwrap(), 7);
}

#[tokio::test]
async fn the_one_statement_path_notifies_the_new_head() {
    let db = TestDb::new().await.unwrap();
    let (store, metrics) = store_with_metrics(&db, true);
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    listener
        .listen(eventlog::testing::APPENDED_CHANNEL)
        .await
        .unwrap();
    store
        .append(request("room-1", ExpectedVersion::NoStream, 3))
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n.payload(), "3");
    assert_eq!(paths(&metrics), (1, 0));
}

/// Two committers (two command-api replicas) appending to the same streams with stated
/// versions: the losers of each race are told so (by the statement's checks and the unique
/// index, then the locked path) and retry; the log stays gapless, every stream's versions
/// contiguous, and every accepted event is in it exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_committers_racing_on_the_same_streams_keep_the_log_gapless_and_lose_nothing() {
    let db = TestDb::new().await.unwrap();
    let (a, metrics_a) = store_with_metrics(&db, true);
    let (b, metrics_b) = store_with_metrics(&db, true);
    const STREAMS: usize = 5;
    const PER_WRITER: usize = 60;
    let writers = (0..8).map(|w| {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut conflicts = 0;
            while accepted.len() < PER_WRITER {
                let stream = format!("room-{}", (w + accepted.len()) % STREAMS);
                let current = store
                    .read_stream(&stream, 0, 10_000)
                    .await
                    .unwrap()
                    .last()
                    .map_or(0, |e| e.version);
                let expected = if current == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(current)
                };
                let req = request(&stream, expected, 2);
                let ids: Vec<_> = req.events.iter().map(|e| e.event_id).collect();
                match store.append(req).await {
                    Ok(done) => {
                        assert_eq!(done.first_version, current + 1);
                        accepted.extend(ids);
                    }
                    Err(AppendError::Conflict { actual, .. }) => {
                        assert!(actual > current, "a conflict means the stream moved on");
                        conflicts += 1;
                    }
                    Err(e) => panic!("unexpected append error: {e:?}"),
                }
            }
            (accepted, conflicts)
        })
    });
    let mut accepted = std::collections::HashSet::new();
    let mut conflicts = 0;
    for w in futures::future::join_all(writers).await {
        let (ids, c) = w.unwrap();
        conflicts += c;
        for id in ids {
            assert!(accepted.insert(id), "an event accepted twice");
        }
    }

    let events = a.read_all(0, 100_000).await.unwrap();
    assert_eq!(events.len(), accepted.len(), "exactly the accepted events");
    let mut versions = std::collections::HashMap::<&str, i64>::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, i as i64 + 1, "gapless positions");
        assert!(accepted.contains(&e.event_id));
        let v = versions.entry(&e.stream_id).or_insert(0);
        assert_eq!(e.version, *v + 1, "contiguous versions of {}", e.stream_id);
        *v = e.version;
    }
    assert!(conflicts > 0, "the writers did race");
    let (one_a, _) = paths(&metrics_a);
    let (one_b, _) = paths(&metrics_b);
    assert!(one_a > 0 && one_b > 0, "both committers used one statement");
}
