#![allow(clippy::unwrap_used)]

mod common;

use common::{claim, count_events, request};
use eventlog::testing::TestDb;
use eventlog::{
    AppendError, EventStore, ExpectedVersion, GroupCommitConfig, IdempotencyRecord,
    IdempotencyScope, PgEventStore, testing::append_in_tx,
};

#[tokio::test]
async fn a_duplicate_idempotency_key_is_rejected_and_appends_nothing() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());

    let mut req = request("room-1", ExpectedVersion::Any, 2);
    req.idempotency.push(claim("user-1", "msg-1"));
    let first = store.append(req.clone()).await.unwrap();
    assert_eq!((first.first_position, first.last_position), (1, 2));

    // The retry (fresh event ids) is rejected.
    let mut retry = request("room-1", ExpectedVersion::Any, 2);
    retry.idempotency.push(claim("user-1", "msg-1"));
    let err = store.append(retry).await.unwrap_err();
    assert!(
        matches!(&err, AppendError::DuplicateIdempotencyKey { scope, key } if scope.as_str() == "user-1" && key == "msg-1"),
        "{err:?}"
    );
    assert_eq!(count_events(&db.pool).await, 2);

    // The same key in another scope is fine.
    let mut other = request("room-1", ExpectedVersion::Any, 1);
    other.idempotency.push(claim("user-2", "msg-1"));
    store.append(other).await.unwrap();
    assert_eq!(count_events(&db.pool).await, 3);
}

#[tokio::test]
async fn lookup_idempotency_returns_the_record_of_what_the_request_appended() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    store
        .append(request("room-0", ExpectedVersion::Any, 4))
        .await
        .unwrap();
    let mut req = request("room-1", ExpectedVersion::Any, 3);
    req.idempotency.push(claim("user-1", "msg-1"));
    let appended = store.append(req).await.unwrap();
    assert_eq!(appended.last_position, 7);

    let found = store
        .lookup_idempotency(
            &IdempotencyScope::named("user-1"),
            &["msg-1".to_owned(), "missing".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let stored = &found["msg-1"];
    assert_eq!(
        stored,
        &IdempotencyRecord {
            fingerprint: "fp-msg-1".to_owned(),
            first_position: 5,
            last_position: 7,
        }
    );
    assert_eq!(
        (stored.first_position, stored.last_position),
        (appended.first_position, appended.last_position)
    );
    assert_eq!(stored.event_count(), 3);
    assert!(
        store
            .lookup_idempotency(&IdempotencyScope::named("user-2"), &["msg-1".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_same_key_twice_in_one_batch_is_rejected_for_the_second_request_only() {
    let db = TestDb::new().await.unwrap();
    let mut a = request("a", ExpectedVersion::Any, 1);
    a.idempotency.push(claim("s", "k"));
    let mut b = request("b", ExpectedVersion::Any, 1);
    b.idempotency.push(claim("s", "k"));
    // A conflicting request does not take its key: a later request may claim it.
    let mut c = request("c", ExpectedVersion::Exact(5), 1);
    c.idempotency.push(claim("s", "k2"));
    let mut d = request("d", ExpectedVersion::Any, 1);
    d.idempotency.push(claim("s", "k2"));
    // The same key twice in one request.
    let mut e = request("e", ExpectedVersion::Any, 1);
    e.idempotency.push(claim("s", "k3"));
    e.idempotency.push(claim("s", "k3"));

    let mut tx = db.pool.begin().await.unwrap();
    let results = append_in_tx(&mut tx, &[a, b, c, d, e]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(
        results[1],
        Err(AppendError::DuplicateIdempotencyKey { .. })
    ));
    assert!(matches!(results[2], Err(AppendError::Conflict { .. })));
    assert!(results[3].is_ok());
    assert!(matches!(
        results[4],
        Err(AppendError::DuplicateIdempotencyKey { .. })
    ));
    assert_eq!(count_events(&db.pool).await, 2);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test]
async fn a_request_without_events_still_stores_its_claim_with_an_empty_range() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    store
        .append(request("a", ExpectedVersion::Any, 2))
        .await
        .unwrap();
    let mut req = request("a", ExpectedVersion::Exact(2), 0);
    req.idempotency.push(claim("s", "noop"));
    let appended = store.append(req).await.unwrap();
    assert_eq!((appended.first_version, appended.last_version), (3, 2));
    assert_eq!((appended.first_position, appended.last_position), (3, 2));
    let found = store
        .lookup_idempotency(&IdempotencyScope::named("s"), &["noop".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        (found["noop"].first_position, found["noop"].last_position),
        (3, 2)
    );
    assert_eq!(found["noop"].event_count(), 0);
}

#[tokio::test]
async fn a_duplicate_event_id_fails_only_its_own_request_in_a_group_commit_batch() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let existing = request("a", ExpectedVersion::Any, 1);
    store.append(existing.clone()).await.unwrap();

    // Many concurrent appends; one reuses an event id that is already stored.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let mut req = request(&format!("s{i}"), ExpectedVersion::Any, 1);
        if i == 25 {
            req.events[0].event_id = existing.events[0].event_id;
        }
        tasks.push(tokio::spawn(async move { store.append(req).await }));
    }
    let mut failed = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(_) => assert_ne!(i, 25),
            Err(AppendError::Store(_)) => {
                assert_eq!(i, 25);
                failed += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(failed, 1);
    assert_eq!(count_events(&db.pool).await, 50);
}
