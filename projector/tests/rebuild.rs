//! Rebuilding a projection from the log yields the same read model as the live projection.

mod common;

use std::time::Duration;

use common::Harness;
use common::message_counts::MessageCounts;
use projector::Projection as _;

#[tokio::test]
async fn rebuilding_in_place_yields_the_read_model_the_live_projection_built() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let (users, rooms) = common::setup_world(&h.store, 50, 10, 5, 1).await;
    common::random_load(&h.store, users, rooms, 3_000, 2, 2).await;
    let mut p = h.projector();
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;
    let live = projector::oracle::snapshot(&h.db.pool)
        .await
        .expect("snapshot");
    let epoch_before: i64 =
        sqlx::query_scalar("SELECT epoch FROM projection_checkpoints WHERE projection = $1")
            .bind(projector::READ_MODELS)
            .fetch_one(&h.db.pool)
            .await
            .expect("epoch");

    let read_models = projector::ReadModels::new(h.db.pool.clone());
    let n = projector::framework::rebuild(&read_models, &h.db.pool, &h.db.pool, 1000)
        .await
        .expect("rebuild");

    let head = h.head().await;
    assert_eq!(n, u64::try_from(head).expect("head"));
    assert_eq!(h.checkpoint().await, head);
    let rebuilt = projector::oracle::snapshot(&h.db.pool)
        .await
        .expect("snapshot");
    let (differ, examples) = projector::oracle::diff(&live, &rebuilt, 10);
    assert_eq!(differ, 0, "{}", examples.join("\n"));
    assert!(live.iter().map(|(_, r)| r.len()).sum::<usize>() > 1000);
    let epoch_after: i64 =
        sqlx::query_scalar("SELECT epoch FROM projection_checkpoints WHERE projection = $1")
            .bind(projector::READ_MODELS)
            .fetch_one(&h.db.pool)
            .await
            .expect("epoch");
    assert_eq!(
        epoch_after,
        epoch_before + 1,
        "a rebuild starts a new epoch"
    );

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}

/// The framework's rebuild is the same for any projection: the tests' message counts, caught up
/// from the log and then damaged, are reset by the projection itself and replayed.
#[tokio::test]
async fn rebuilding_another_projection_resets_it_and_replays_the_log() {
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 20, 4, 2, 12).await;
    common::random_load(&h.store, users, rooms, 800, 2, 13).await;
    let (pool, head) = (&h.db.pool, h.head().await);
    let counts = MessageCounts::create(pool).await;
    let n = projector::framework::catch_up_from_log(&counts, pool, pool, 100)
        .await
        .expect("catch up");
    assert_eq!(n, u64::try_from(head).expect("head"));
    let expected = MessageCounts::expected(pool).await;
    assert!(
        expected.values().sum::<i64>() > 100,
        "the load sends messages"
    );
    assert_eq!(counts.counts().await, expected);
    sqlx::query("UPDATE test_message_counts SET messages = messages + 7")
        .execute(pool)
        .await
        .expect("damage");

    let n = projector::framework::rebuild(&counts, pool, pool, 100)
        .await
        .expect("rebuild");

    assert_eq!(n, u64::try_from(head).expect("head"));
    assert_eq!(counts.checkpoint().await.expect("checkpoint"), head);
    assert_eq!(counts.counts().await, expected);
    assert_eq!(h.checkpoint().await, 0, "the read models were not touched");
    h.nats.cleanup().await;
}

/// The search projection caught up from the log, then rebuilt (reset and replayed), holds
/// exactly the read models' messages with their current text, both times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_index_caught_up_and_rebuilt_from_the_log_holds_the_read_models_messages() {
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 20, 4, 2, 21).await;
    common::random_load(&h.store, users, rooms, 1_500, 2, 22).await;
    let (pool, head) = (&h.db.pool, h.head().await);
    projector::catch_up_from_log(pool, pool)
        .await
        .expect("read models");
    let index = search::TantivyIndex::open_writer(
        &h.data.path().join("search"),
        search::tantivy_index::WriterSettings::default(),
    )
    .expect("index");
    let projection = projector::SearchIndex::new(std::sync::Arc::new(index.clone()));
    let n = projector::framework::catch_up_from_log(&projection, pool, pool, 250)
        .await
        .expect("catch up");
    assert_eq!(n, u64::try_from(head).expect("head"));
    assert_eq!(projection.checkpoint().await.expect("checkpoint"), head);
    common::assert_search_holds_the_read_models_messages(pool, &index).await;

    let n = projector::framework::rebuild(&projection, pool, pool, 1000)
        .await
        .expect("rebuild");
    assert_eq!(n, u64::try_from(head).expect("head"));
    common::assert_search_holds_the_read_models_messages(pool, &index).await;
    h.nats.cleanup().await;
}
