//! Rebuilding a projection from the log yields the same read model as the live projection.

mod common;

use std::time::Duration;

use common::Harness;
use common::message_counts::MessageCounts;
use projector::Projection as _;

/// A rebuild fills a copy beside the live read models and swaps it in: the same rows, the
/// same constraints and indexes under the same names, a new epoch, nothing left behind.
#[tokio::test]
async fn a_blue_green_rebuild_yields_the_read_models_the_live_projection_built() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let (users, rooms) = common::setup_world(&h.store, 50, 10, 5, 1).await;
    common::random_load(&h.store, users, rooms, 3_000, 2, 2).await;
    let mut p = h.projector();
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;
    let live = projector::oracle::snapshot(&h.db.pool)
        .await
        .expect("snapshot");
    let schema_before = read_model_schema(&h.db.pool).await;
    let epoch_before = epoch(&h.db.pool).await;

    let read_models = projector::ReadModels::new(h.db.pool.clone());
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |p: &projector::framework::Progress| {
        seen.lock().expect("progress").push((p.phase, p.position));
    };
    let done = projector::framework::rebuild(&read_models, &h.db.pool, &h.db.pool, 1000, &progress)
        .await
        .expect("rebuild");

    let head = h.head().await;
    assert_eq!(done.events, u64::try_from(head).expect("head"));
    assert_eq!(done.switched.checkpoint, head);
    assert_eq!(
        done.switched.epoch,
        epoch_before + 1,
        "a rebuild starts a new epoch"
    );
    assert_eq!(epoch(&h.db.pool).await, epoch_before + 1);
    assert_eq!(h.checkpoint().await, head);
    let rebuilt = projector::oracle::snapshot(&h.db.pool)
        .await
        .expect("snapshot");
    let (differ, examples) = projector::oracle::diff(&live, &rebuilt, 10);
    assert_eq!(differ, 0, "{}", examples.join("\n"));
    assert!(live.iter().map(|(_, r)| r.len()).sum::<usize>() > 1000);
    // Every table compared holds rows: mention counts, receipts, levels and privacy included.
    for (table, rows) in &live {
        assert!(
            !rows.is_empty(),
            "{table} is empty: the comparison would prove nothing"
        );
    }
    assert_eq!(
        read_model_schema(&h.db.pool).await,
        schema_before,
        "the same tables, constraints, indexes and views"
    );
    let left: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'rm_rebuild'")
            .fetch_optional(&h.db.pool)
            .await
            .expect("schemas");
    assert_eq!(left, None, "the copy's schema is gone");
    let seen = seen.into_inner().expect("progress");
    let phases: Vec<_> = seen.iter().map(|s| s.0).collect();
    use projector::framework::Phase;
    assert_eq!(phases.first(), Some(&Phase::Replay));
    assert!(phases.contains(&Phase::Indexing) && phases.contains(&Phase::Switching));
    assert_eq!(seen.last(), Some(&(Phase::Done, head)));
    assert!(
        seen.iter().filter(|s| s.0 == Phase::Replay).count() > 3,
        "progress after every batch: {seen:?}"
    );

    // The live projector carries on over the swapped-in tables.
    let (users, rooms) = common::setup_world(&h.store, 5, 2, 1, 3).await;
    common::random_load(&h.store, users, rooms, 200, 2, 4).await;
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;
    let (oracle, _, _) = common::oracle(&h.db.pool).await;
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}

/// While the live projector keeps applying a load, readers keep reading: never an error,
/// never an empty history for a room that has messages. After the switch the live projector
/// goes on from the copy's checkpoint, and the result equals a replay of the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_load_never_shows_readers_an_empty_or_failing_read_model() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let (users, rooms) = common::setup_world(&h.store, 30, 8, 4, 31).await;
    common::random_load(&h.store, users.clone(), rooms.clone(), 2_000, 2, 32).await;
    let mut p = h.projector();
    h.drive_to_head(&mut p, Duration::from_secs(60)).await;
    let with_messages: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT DISTINCT room_id FROM rm_messages")
            .fetch_all(&h.db.pool)
            .await
            .expect("rooms");
    assert!(!with_messages.is_empty());

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let live = tokio::spawn(p.run({
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }));
    let load = tokio::spawn({
        let store = h.store.clone();
        async move { common::random_load(&store, users, rooms, 1_500, 2, 33).await }
    });
    let reader = tokio::spawn({
        let pool = h.db.pool.clone();
        let stopped = stopped.clone();
        async move {
            let (mut reads, mut errors, mut empty) = (0u64, Vec::new(), 0u64);
            while !*stopped.borrow() {
                for room in &with_messages {
                    let r: Result<(i64, i64), _> = sqlx::query_as(
                        "SELECT (SELECT count(*) FROM rm_messages WHERE room_id = $1), \
                         (SELECT count(*) FROM rm_unread WHERE room_id = $1)",
                    )
                    .bind(room)
                    .fetch_one(&pool)
                    .await;
                    reads += 1;
                    match r {
                        Ok((0, _)) | Ok((_, 0)) => empty += 1,
                        Ok(_) => {}
                        Err(e) => errors.push(e.to_string()),
                    }
                }
            }
            (reads, errors, empty)
        }
    });

    let read_models = projector::ReadModels::new(h.db.pool.clone());
    let done = projector::framework::rebuild(&read_models, &h.db.pool, &h.db.pool, 500, &|_| {})
        .await
        .expect("rebuild");
    load.await.expect("load");
    let head = h.head().await;
    assert!(done.switched.checkpoint <= head);
    wait_for_checkpoint(&h, head).await;
    stop.send(true).expect("stop");
    live.await.expect("live projector").expect("live projector");
    let (reads, errors, empty) = reader.await.expect("reader");
    assert!(reads > 0);
    assert_eq!(
        errors,
        Vec::<String>::new(),
        "reads failed during the rebuild"
    );
    assert_eq!(empty, 0, "empty reads of rooms with messages, of {reads}");
    let (oracle, _, _) = common::oracle(&h.db.pool).await;
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}

/// A rebuild that dies halfway leaves the live read models as they were, and the next one
/// starts over and switches. Two at once: the second is refused.
#[tokio::test]
async fn an_interrupted_rebuild_leaves_the_live_read_models_and_can_be_started_again() {
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 20, 4, 2, 41).await;
    common::random_load(&h.store, users, rooms, 1_000, 2, 42).await;
    let pool = &h.db.pool;
    projector::catch_up_from_log(pool, pool)
        .await
        .expect("live");
    let live = projector::oracle::snapshot(pool).await.expect("snapshot");
    let head = h.head().await;

    // The process dies after some batches: the copy is left as it was, never switched.
    let read_models = projector::ReadModels::new(pool.clone());
    let staged = read_models.stage().await.expect("stage");
    let events: Vec<eventlog::RecordedEvent> = eventlog::EventStore::read_all(&h.store, 0, 300)
        .await
        .expect("log");
    let applied = staged
        .copy()
        .apply_batch(projector::projection::Batch {
            events: &events,
            dead_lettered: &[],
        })
        .await
        .expect("part of the log");
    assert_eq!(applied.checkpoint, 300);
    drop(staged);
    let after = projector::oracle::snapshot(pool).await.expect("snapshot");
    assert_eq!(projector::oracle::diff(&live, &after, 10).0, 0);
    assert_eq!(h.checkpoint().await, head);

    // Another rebuild holds the lock: refused, nothing touched.
    let mut other = pool.acquire().await.expect("connection");
    let _: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(format!("chat.rebuild.{}", projector::READ_MODELS))
        .fetch_one(&mut *other)
        .await
        .expect("lock");
    let err = projector::framework::rebuild(&read_models, pool, pool, 1000, &|_| {})
        .await
        .expect_err("a second rebuild at once");
    assert!(err.to_string().contains("already running"), "{err}");
    // Released before the next rebuild: dropping the connection closes it in the background,
    // and the server may not have let go of the lock yet when the rebuild asks for it.
    let released: bool = sqlx::query_scalar("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(format!("chat.rebuild.{}", projector::READ_MODELS))
        .fetch_one(&mut *other)
        .await
        .expect("unlock");
    assert!(released);
    drop(other.detach());

    let done = projector::framework::rebuild(&read_models, pool, pool, 1000, &|_| {})
        .await
        .expect("rebuild again");
    assert_eq!(done.switched.checkpoint, head);
    let rebuilt = projector::oracle::snapshot(pool).await.expect("snapshot");
    let (differ, examples) = projector::oracle::diff(&live, &rebuilt, 10);
    assert_eq!(differ, 0, "{}", examples.join("\n"));
    h.nats.cleanup().await;
}

async fn epoch(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT epoch FROM projection_checkpoints WHERE projection = $1")
        .bind(projector::READ_MODELS)
        .fetch_one(pool)
        .await
        .expect("epoch")
}

/// Every table, column, constraint, index and view of the read models, as definitions.
async fn read_model_schema(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, \
           is_nullable, column_default) FROM information_schema.columns \
           WHERE table_schema = 'public' AND table_name LIKE 'rm\\_%' \
         UNION ALL SELECT format('index %s', indexdef) FROM pg_indexes \
           WHERE schemaname = 'public' AND tablename LIKE 'rm\\_%' \
         UNION ALL SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) \
           FROM pg_constraint WHERE conrelid::regclass::text LIKE 'rm\\_%' \
         UNION ALL SELECT format('view %s %s', viewname, definition) FROM pg_views \
           WHERE schemaname = 'public' AND viewname LIKE 'rm\\_%' \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("schema")
}

async fn wait_for_checkpoint(h: &Harness, position: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while h.checkpoint().await < position {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the live projector did not reach {position}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The framework's rebuild is the same for any projection: the tests' message counts, caught up
/// from the log and then damaged, are rebuilt into fresh tables and swapped in.
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

    let done = projector::framework::rebuild(&counts, pool, pool, 100, &|_| {})
        .await
        .expect("rebuild");

    assert_eq!(done.events, u64::try_from(head).expect("head"));
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

    let done = projector::framework::rebuild(&projection, pool, pool, 1000, &|_| {})
        .await
        .expect("rebuild");
    assert_eq!(done.events, u64::try_from(head).expect("head"));
    common::assert_search_holds_the_read_models_messages(pool, &index).await;
    h.nats.cleanup().await;
}
