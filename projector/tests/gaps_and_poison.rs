//! A gap in the stream is filled from the log, never skipped; a poison event lands in
//! dead_letters with a reason while later events still apply. For the read models and for any
//! other projection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use common::message_counts::{MESSAGE_COUNTS, MessageCounts};
use common::{Harness, SimRoom, append_raw, create, register, send};
use events::room::RoomCommand;
use events::values::Visibility;
use projector::Projection as _;
use serde_json::json;

#[tokio::test]
async fn a_purged_stretch_of_the_stream_is_filled_from_the_log_not_skipped() {
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 30, 5, 3, 3).await;
    common::random_load(&h.store, users, rooms, 600, 2, 4).await;
    // Publish everything, then purge the first 300 messages (no relay runs afterwards, so
    // nothing repairs the stream): a consumer starting at 1 first sees 301.
    let mut relay = h.relay();
    relay.publish_pending().await.expect("publish");
    let js = jetstream::new(h.nats.client.clone());
    let stream = js.get_stream(&h.nats.stream_name).await.expect("stream");
    stream.purge().sequence(301).await.expect("purge");

    let metrics = projector::Metrics::new().expect("metrics");
    let mut p = h.projector().with_metrics(metrics.clone());
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;

    let from_log = metrics
        .gap_events
        .with_label_values(&[projector::READ_MODELS])
        .get();
    assert_eq!(from_log, 300, "events 1..=300 came from the log");
    let (oracle, _, _) = common::oracle(&h.db.pool).await;
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;
    h.nats.cleanup().await;
}

#[tokio::test]
async fn a_poison_event_goes_to_dead_letters_with_a_reason_and_later_events_still_apply() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let s = &h.store;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let alice = register(s, &format!("alice_{tag}")).await;
    let mut room = SimRoom::new();
    let RoomCommand::Create { name, topic, .. } = create("poison", Visibility::Public) else {
        unreachable!()
    };
    room.must(
        s,
        alice,
        RoomCommand::Create {
            room_id: room.id,
            name,
            topic,
            visibility: Visibility::Public,
        },
    )
    .await;
    room.must(s, alice, send("before")).await;
    let unknown = append_raw(s, &room.id.stream_id(), "room", "RoomExploded", json!({})).await;
    let malformed = append_raw(
        s,
        &room.id.stream_id(),
        "room",
        "MessageSent",
        json!({ "nonsense": true }),
    )
    .await;
    // A message edit for a message that does not exist violates the model.
    let orphan = append_raw(
        s,
        &room.id.stream_id(),
        "room",
        "MessageEdited",
        json!({ "message_id": uuid::Uuid::now_v7(), "seq": 99, "body": "x", "edit_number": 1,
                "edited_by": alice }),
    )
    .await;
    room.version = orphan.last_version;
    room.must(s, alice, send("after")).await;

    let metrics = projector::Metrics::new().expect("metrics");
    let mut p = h.projector().with_metrics(metrics.clone());
    h.drive_to_head(&mut p, Duration::from_secs(30)).await;

    let dead = h.dead_letters().await;
    let positions: Vec<i64> = dead.iter().map(|d| d.0).collect();
    assert_eq!(
        positions,
        vec![
            unknown.last_position,
            malformed.last_position,
            orphan.last_position
        ]
    );
    assert_eq!(dead[0].1, "RoomExploded");
    assert!(dead[0].2.contains("RoomExploded"), "reason: {}", dead[0].2);
    assert!(dead[1].2.contains("cannot decode"), "reason: {}", dead[1].2);
    assert!(
        dead[2].2.contains("not in the read model"),
        "reason: {}",
        dead[2].2
    );
    assert_eq!(
        metrics
            .dead_letters
            .with_label_values(&[projector::READ_MODELS])
            .get(),
        3
    );
    let bodies: Vec<String> =
        sqlx::query_scalar("SELECT body FROM rm_messages WHERE room_id = $1 ORDER BY seq")
            .bind(room.id.0)
            .fetch_all(&h.db.pool)
            .await
            .expect("messages");
    assert_eq!(bodies, vec!["before", "after"]);
    assert_eq!(h.checkpoint().await, h.head().await);

    // The oracle dead-letters the same events and builds the same rows.
    let (oracle, _, _) = common::oracle(&h.db.pool).await;
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;
    let oracle_dead: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&oracle.pool)
        .await
        .expect("count");
    assert_eq!(oracle_dead, 3);

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}

/// A database dropped and created again (or another deployment on the same NATS account)
/// leaves a stream holding another log's events at the positions this log will use. The
/// projector must apply none of them: it waits for the relay to replace the stream.
#[tokio::test]
async fn a_stream_left_over_from_another_log_is_not_applied_until_the_relay_replaces_it() {
    let a = Harness::new().await;
    common::setup_world(&a.store, 4, 1, 1, 5).await;
    let published =
        i64::try_from(a.relay().publish_pending().await.expect("publish A")).expect("count");
    assert!(published > 0);

    // Log B, larger than A's stream, so that the stream looks like B's first positions.
    let b = Harness::new().await;
    common::setup_world(&b.store, 12, 3, 2, 6).await;
    let head = b.head().await;
    assert!(
        head > published,
        "B's log {head} is longer than A's stream {published}"
    );
    let mut config = a.projector_config();
    config.idle_wait = Duration::from_millis(100);
    let mut p = projector::Projector::new(
        Arc::new(projector::ReadModels::new(b.db.pool.clone())),
        b.db.pool.clone(),
        b.db.pool.clone(),
        a.nats.client.clone(),
        config,
    );
    for _ in 0..5 {
        let err = p
            .process_next()
            .await
            .expect_err("another log's stream is refused");
        assert!(format!("{err:#}").contains("not this log's"), "{err:#}");
    }
    assert_eq!(b.checkpoint().await, 0, "nothing of log A was applied");

    // B's relay replaces the stream; the projector then follows B's log.
    let replaced = eventlog::Relay::new(
        b.db.pool.clone(),
        a.nats.client.clone(),
        a.nats.relay_config(),
    )
    .publish_pending()
    .await
    .expect("publish B");
    assert_eq!(i64::try_from(replaced).expect("count"), head);
    b.drive_to_head(&mut p, Duration::from_secs(30)).await;
    let (oracle, _, _) = common::oracle(&b.db.pool).await;
    common::assert_same_read_models(&b.db.pool, &oracle.pool).await;
    a.nats.cleanup().await;
    b.nats.cleanup().await;
}

/// The framework's gap filling and dead letters serve any projection: the tests' own
/// projection (messages per room, its own table and checkpoint) dead-letters its poison event
/// under its own name, is refilled from the log when it was reset behind its runner's back, and
/// fills a purged stretch of the stream from the log; its counts are always what the log holds.
#[tokio::test]
async fn another_projection_fills_gaps_from_the_log_and_dead_letters_its_poison_too() {
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 20, 4, 2, 8).await;
    let mut rooms = common::random_load(&h.store, users.clone(), rooms, 300, 2, 9).await;
    let poisoned = append_raw(
        &h.store,
        &rooms[0].id.stream_id(),
        "room",
        "MessageSent",
        json!({ "nonsense": true }),
    )
    .await;
    rooms[0].version = poisoned.last_version;
    let poison = poisoned.last_position;
    common::random_load(&h.store, users, rooms, 400, 2, 10).await;
    let mut relay = h.relay();
    relay.publish_pending().await.expect("publish");

    let counts = Arc::new(MessageCounts::create(&h.db.pool).await);
    let metrics = projector::Metrics::new().expect("metrics");
    let label = [MESSAGE_COUNTS];
    let from_log = || metrics.gap_events.with_label_values(&label).get();
    let mut p = h.runner(counts.clone()).with_metrics(metrics.clone());
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;

    assert_eq!(from_log(), 0);
    assert_eq!(metrics.dead_letters.with_label_values(&label).get(), 1);
    let dead_letters = || async {
        sqlx::query_as::<_, (String, i64, String)>(
            "SELECT projection, position, reason FROM dead_letters",
        )
        .fetch_all(&h.db.pool)
        .await
        .expect("dead letters")
    };
    let dead = dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].0.as_str(), dead[0].1), (MESSAGE_COUNTS, poison));
    assert!(dead[0].2.contains("cannot decode"), "reason: {}", dead[0].2);
    let head = h.head().await;
    assert_eq!(counts.checkpoint().await.expect("checkpoint"), head);
    let expected = MessageCounts::expected(&h.db.pool).await;
    assert!(
        expected.values().sum::<i64>() > 50,
        "the load sends messages"
    );
    assert_eq!(counts.counts().await, expected);
    assert_eq!(h.checkpoint().await, 0, "the read models were not touched");

    // A reset the runner does not know of: the next delivery is far beyond the projection's
    // checkpoint, and everything before it is read from the log.
    counts.reset().await.expect("reset");
    register(&h.store, "late_user").await;
    relay.publish_pending().await.expect("publish");
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;
    assert_eq!(from_log(), u64::try_from(head).expect("head"));
    assert_eq!(metrics.dead_letters.with_label_values(&label).get(), 2);
    assert_eq!(
        dead_letters().await,
        dead,
        "the same dead letter, written again"
    );
    assert_eq!(counts.counts().await, expected);

    // The stream loses its first 150 events (no relay runs afterwards, so nothing repairs
    // it): a runner starting from scratch first sees 151 and reads 1..=150 from the log.
    let js = jetstream::new(h.nats.client.clone());
    let stream = js.get_stream(&h.nats.stream_name).await.expect("stream");
    stream.purge().sequence(151).await.expect("purge");
    counts.reset().await.expect("reset");
    let before = from_log();
    let mut p = h.runner(counts.clone()).with_metrics(metrics.clone());
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;
    assert_eq!(from_log() - before, 150, "events 1..=150 came from the log");
    assert_eq!(
        counts.checkpoint().await.expect("checkpoint"),
        h.head().await
    );
    assert_eq!(counts.counts().await, expected);
    assert_eq!(dead_letters().await, dead);
    h.nats.cleanup().await;
}
