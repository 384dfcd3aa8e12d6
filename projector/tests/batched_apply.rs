//! Runs of `MessageSent` are applied in one statement per run; applying the same log one event
//! at a time (each in its own transaction, `apply::apply_event`) must give the same rows, and
//! every unread count must equal its definition.

mod common;

use eventlog::testing::TestDb;

#[tokio::test]
async fn message_runs_applied_together_equal_events_applied_one_by_one() {
    let h = common::Harness::new().await;
    // Many rooms and two writers: the log interleaves messages of several rooms with joins,
    // leaves, kicks, edits, deletes, reactions and read markers.
    let (users, rooms) = common::setup_world(&h.store, 30, 8, 5, 7).await;
    common::random_load(&h.store, users, rooms, 4_000, 2, 7).await;
    let head = h.head().await;

    let log = eventlog::testing::read_all(&h.db.pool, 0, head)
        .await
        .expect("log");
    assert_eq!(log.len() as i64, head);
    let longest_run = log
        .split(|e| projector::apply::as_message_sent(e).is_none())
        .map(<[_]>::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_run >= 5,
        "the load must contain runs of messages (longest {longest_run})"
    );

    // Batched: the engine, reading the log 1,000 events per transaction.
    let (batched, n, _) = common::oracle(&h.db.pool).await;
    assert_eq!(n as i64, head);

    // One by one.
    let single = TestDb::new().await.expect("database");
    projector::migrate(&single.pool).await.expect("migrate");
    for ev in &log {
        let mut tx = single.pool.begin().await.expect("begin");
        projector::apply::apply_event(&mut tx, ev)
            .await
            .unwrap_or_else(|e| panic!("apply position {}: {e}", ev.position));
        tx.commit().await.expect("commit");
    }

    common::assert_same_read_models(&batched.pool, &single.pool).await;
    let unread: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(unread_count), 0)::int8 FROM rm_unread")
            .fetch_one(&single.pool)
            .await
            .expect("unread");
    assert!(unread > 0, "the load must leave unread messages");

    // The unread count (a subtraction, see the rm_unread view) equals its definition: the
    // messages after the member's read marker that they did not send and that are not deleted.
    let wrong: Vec<(uuid::Uuid, uuid::Uuid, i64, i64)> = sqlx::query_as(
        "SELECT m.room_id, m.user_id, u.unread_count, \
           (SELECT count(*) FROM rm_messages x WHERE x.room_id = m.room_id \
             AND x.seq > m.read_seq AND x.sender_id <> m.user_id AND NOT x.deleted) AS expected \
         FROM rm_members m JOIN rm_unread u USING (room_id, user_id) WHERE m.status = 'joined'",
    )
    .fetch_all(&batched.pool)
    .await
    .expect("unread counts")
    .into_iter()
    .filter(|(_, _, got, expected)| got != expected)
    .collect();
    assert!(
        wrong.is_empty(),
        "unread counts differ from their definition: {wrong:?}"
    );
    h.nats.cleanup().await;
}
