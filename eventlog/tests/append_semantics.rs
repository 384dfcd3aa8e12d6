#![allow(clippy::unwrap_used)]

mod common;

use common::{count_events, request};
use eventlog::testing::TestDb;
use eventlog::{
    AppendError, EventStore, ExpectedVersion, GroupCommitConfig, PgEventStore,
    testing::append_in_tx,
};

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_appends_nothing() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());

    let first = store
        .append(request("room-1", ExpectedVersion::NoStream, 3))
        .await
        .unwrap();
    assert_eq!((first.first_version, first.last_version), (1, 3));
    assert_eq!((first.first_position, first.last_position), (1, 3));

    let err = store
        .append(request("room-1", ExpectedVersion::Exact(2), 1))
        .await
        .unwrap_err();
    match err {
        AppendError::Conflict {
            stream_id, actual, ..
        } => {
            assert_eq!(stream_id, "room-1");
            assert_eq!(actual, 3);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(count_events(&db.pool).await, 3);
    assert_eq!(store.head_position().await.unwrap(), 3);

    let ok = store
        .append(request("room-1", ExpectedVersion::Exact(3), 2))
        .await
        .unwrap();
    assert_eq!((ok.first_version, ok.last_version), (4, 5));
    assert_eq!((ok.first_position, ok.last_position), (4, 5));
}

#[tokio::test]
async fn no_stream_on_an_existing_stream_is_a_conflict() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    store
        .append(request("room-1", ExpectedVersion::NoStream, 1))
        .await
        .unwrap();
    let err = store
        .append(request("room-1", ExpectedVersion::NoStream, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Conflict { actual: 1, .. }),
        "{err:?}"
    );
    assert_eq!(count_events(&db.pool).await, 1);
    // Any never conflicts.
    let any = store
        .append(request("room-1", ExpectedVersion::Any, 1))
        .await
        .unwrap();
    assert_eq!(any.last_version, 2);
}

#[tokio::test]
async fn chained_requests_in_one_append_in_tx_call_work_and_a_rejected_one_does_not_fail_the_others()
 {
    let db = TestDb::new().await.unwrap();
    let reqs = vec![
        request("a", ExpectedVersion::NoStream, 2),
        request("a", ExpectedVersion::Exact(2), 1),
        request("b", ExpectedVersion::NoStream, 1),
        // stale: "a" is at 3 by now
        request("a", ExpectedVersion::Exact(2), 1),
        request("a", ExpectedVersion::Exact(3), 2),
    ];
    let mut tx = db.pool.begin().await.unwrap();
    let results = append_in_tx(&mut tx, &reqs).await.unwrap();
    tx.commit().await.unwrap();

    let ok = |i: usize| results[i].as_ref().unwrap();
    assert_eq!((ok(0).first_version, ok(0).last_version), (1, 2));
    assert_eq!((ok(0).first_position, ok(0).last_position), (1, 2));
    assert_eq!((ok(1).first_version, ok(1).last_version), (3, 3));
    assert_eq!(ok(1).last_position, 3);
    assert_eq!((ok(2).first_version, ok(2).last_position), (1, 4));
    assert!(matches!(
        results[3],
        Err(AppendError::Conflict { actual: 3, .. })
    ));
    assert_eq!((ok(4).first_version, ok(4).last_version), (4, 5));
    assert_eq!((ok(4).first_position, ok(4).last_position), (5, 6));

    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let a = store.read_stream("a", 0, 100).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        a.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3, 5, 6]
    );
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(store.head_position().await.unwrap(), 6);
    // read_all after a position, with a limit
    let page = store.read_all(2, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![3, 4]
    );
    // the stored event round-trips its envelope
    assert_eq!(all[0].event_id, reqs[0].events[0].event_id);
    assert_eq!(all[0].data, reqs[0].events[0].data);
    assert_eq!(all[0].stream_type, "test");
}

#[tokio::test]
async fn an_uncommitted_append_in_tx_leaves_no_trace() {
    let db = TestDb::new().await.unwrap();
    {
        let mut tx = db.pool.begin().await.unwrap();
        let results = append_in_tx(&mut tx, &[request("a", ExpectedVersion::Any, 3)])
            .await
            .unwrap();
        assert!(results[0].is_ok());
        tx.rollback().await.unwrap();
    }
    assert_eq!(count_events(&db.pool).await, 0);
    assert_eq!(eventlog::testing::head_position(&db.pool).await.unwrap(), 0);
}

#[tokio::test]
async fn requests_appended_in_order_each_find_the_version_the_one_before_left() {
    // More requests than tokio's cooperative budget lets one task send in a row (joined
    // `append`s overtook each other there), then a queue far shorter than the requests.
    for queue in [GroupCommitConfig::default().queue, 8] {
        let db = TestDb::new().await.unwrap();
        let config = GroupCommitConfig {
            queue,
            max_batch: 64,
            ..GroupCommitConfig::default()
        };
        let store = PgEventStore::new(db.pool.clone(), config);
        let requests: Vec<_> = (0..1_000)
            .map(|i| {
                let expected = match i {
                    0 => ExpectedVersion::NoStream,
                    i => ExpectedVersion::Exact(i),
                };
                request("room-1", expected, 1)
            })
            .collect();
        let results = store.append_in_order(requests).await;
        assert_eq!(results.len(), 1_000);
        for (i, result) in results.into_iter().enumerate() {
            let appended = result.unwrap_or_else(|e| panic!("queue {queue}, request {i}: {e:?}"));
            assert_eq!(appended.last_version, i as i64 + 1);
        }
        assert_eq!(count_events(&db.pool).await, 1_000);
    }
}
