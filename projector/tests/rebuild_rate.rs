//! Rebuild and catch-up rates for BENCHMARKS.md (printed with `--nocapture`), over two logs:
//! 200,000 messages only, and a 100,000-event mixed workload (joins, leaves, invites, edits,
//! deletes, reactions, read markers beside messages, `common::random_load`). For each: the
//! blue/green rebuild of the read models (`framework::rebuild`, what `projector rebuild`
//! runs), its ceiling — raw PostgreSQL `COPY` of the same rows into empty tables of the same
//! shape (constraints and indexes included) — and the rebuild of the search index into
//! Tantivy and, when a node answers, OpenSearch; for the mixed log also the live projector's
//! catch-up from JetStream.
//!
//! A benchmark, not a check of speed: ignored in the regular suite, run in release:
//! `cargo test --release -p projector --test rebuild_rate -- --ignored --nocapture`.
//! Its assertions (every path ends at the head, the read models equal a replay) are also
//! covered by `rebuild.rs`, `rebuild_all.rs` and `exactly_once.rs`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, SimRoom};
use events::UserId;
use events::room::decide;
use projector::Projection as _;

/// Appends `n` messages to `rooms`, 100 per append, each from a member of its room.
async fn message_log(h: &Harness, rooms: &mut [SimRoom], n: usize) {
    let mut sent = 0;
    let mut turn = 0usize;
    while sent < n {
        let room = &mut rooms[turn % rooms.len()];
        turn += 1;
        let mut members: Vec<UserId> = room.state.members.keys().copied().collect();
        members.sort_by_key(|u| u.0);
        if members.is_empty() {
            continue;
        }
        let mut state = room.state.clone();
        let mut events = Vec::new();
        for i in 0..100.min(n - sent) {
            let sender = members[(sent + i) % members.len()];
            let cmd = common::send(&format!("message {} about the quarterly report", sent + i));
            let mut out = decide(&state, sender, cmd).expect("send");
            for e in &out {
                state = events::room::evolve(std::mem::take(&mut state), e);
            }
            events.append(&mut out);
        }
        sent += events.len();
        room.append(&h.store, members[0], &events).await;
    }
}

fn rate(n: u64, took: Duration) -> String {
    format!(
        "{n} events in {:.2} s = {:.0} events/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64().max(1e-9)
    )
}

/// Raw `COPY` of every read-model row into empty tables of the same shape (the live tables'
/// columns, constraints and indexes): the ceiling of a rebuild into PostgreSQL.
async fn copy_baseline(pool: &sqlx::PgPool) -> (u64, Duration) {
    let mut conn = pool.acquire().await.expect("connection");
    let mut rows = 0u64;
    let mut took = Duration::ZERO;
    for table in projector::READ_MODEL_TABLES {
        let mut data = Vec::new();
        let mut out = conn
            .copy_out_raw(&format!("COPY {table} TO STDOUT (FORMAT binary)"))
            .await
            .expect("copy out");
        use futures::StreamExt as _;
        while let Some(chunk) = out.next().await {
            data.extend_from_slice(&chunk.expect("chunk"));
        }
        drop(out);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS bench_{table}; \
             CREATE TABLE bench_{table} (LIKE {table} INCLUDING ALL)"
        )))
        .execute(&mut *conn)
        .await
        .expect("create");
        let started = Instant::now();
        let mut copy = conn
            .copy_in_raw(&format!("COPY bench_{table} FROM STDIN (FORMAT binary)"))
            .await
            .expect("copy in");
        copy.send(data).await.expect("send");
        rows += copy.finish().await.expect("finish");
        took += started.elapsed();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE bench_{table}")))
            .execute(&mut *conn)
            .await
            .expect("drop");
    }
    (rows, took)
}

async fn measure(h: &Harness, label: &str) {
    let pool = &h.db.pool;
    let head = h.head().await;
    let n = u64::try_from(head).expect("head");
    let read_models = projector::ReadModels::new(pool.clone());
    let done =
        projector::framework::rebuild(&read_models, pool, pool, projector::REBUILD_BATCH, &|_| {})
            .await
            .expect("rebuild the read models");
    assert_eq!(done.switched.checkpoint, head);
    eprintln!(
        "[{label}] rebuild into the read models: {}",
        rate(done.events, done.elapsed)
    );
    let (rows, took) = copy_baseline(pool).await;
    eprintln!(
        "[{label}] baseline, raw COPY of the same {rows} rows: {:.2} s ({:.0} rows/s; \
         {:.0} events/s equivalent); rebuild/COPY time = {:.2}",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        done.elapsed.as_secs_f64() / took.as_secs_f64()
    );

    let tantivy = search::TantivyIndex::open_writer(
        &h.data.path().join("search"),
        search::tantivy_index::WriterSettings::default(),
    )
    .expect("tantivy");
    let projection = projector::SearchIndex::new(Arc::new(tantivy));
    let done =
        projector::framework::rebuild(&projection, pool, pool, projector::REBUILD_BATCH, &|_| {})
            .await
            .expect("rebuild into Tantivy");
    assert_eq!(projection.checkpoint().await.expect("checkpoint"), head);
    eprintln!(
        "[{label}] rebuild into Tantivy: {}",
        rate(done.events, done.elapsed)
    );

    if std::env::var("CHAT_OPENSEARCH").as_deref() == Ok("skip") {
        eprintln!("[{label}] rebuild into OpenSearch: not run (CHAT_OPENSEARCH=skip)");
        return;
    }
    let url = std::env::var("OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into());
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let opensearch = Arc::new(search::OpenSearchIndex::new(&url, &prefix).expect("client"));
    opensearch
        .ensure()
        .await
        .expect("an OpenSearch node (scripts/opensearch.sh)");
    let projection = projector::SearchIndex::new(opensearch.clone());
    let done =
        projector::framework::rebuild(&projection, pool, pool, projector::REBUILD_BATCH, &|_| {})
            .await
            .expect("rebuild into OpenSearch");
    assert_eq!(projection.checkpoint().await.expect("checkpoint"), head);
    eprintln!(
        "[{label}] rebuild into OpenSearch: {}",
        rate(done.events, done.elapsed)
    );
    opensearch
        .delete_all()
        .await
        .expect("delete the benchmark's indexes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release, see the module docs and BENCHMARKS.md"]
async fn rebuild_rates_over_a_message_log_and_a_mixed_log_are_measured() {
    // 200,000 messages.
    let h = Harness::new().await;
    let (_, mut rooms) = common::setup_world(&h.store, 200, 40, 0, 61).await;
    let setup = h.head().await;
    let started = Instant::now();
    message_log(&h, &mut rooms, 200_000).await;
    eprintln!(
        "[messages] log: {} setup events, then {} messages appended in {:.1} s",
        setup,
        h.head().await - setup,
        started.elapsed().as_secs_f64()
    );
    measure(&h, "messages").await;
    h.nats.cleanup().await;

    // 100,000 mixed events, caught up live from JetStream first.
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 200, 40, 20, 62).await;
    common::random_load(&h.store, users, rooms, 100_000, 4, 63).await;
    let head = h.head().await;
    let mix: Vec<(String, i64)> =
        sqlx::query_as("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC")
            .fetch_all(&h.db.pool)
            .await
            .expect("mix");
    eprintln!("[mixed] log: {head} events: {mix:?}");
    let mut relay = h.relay();
    while relay.publish_pending().await.expect("publish") > 0 {}
    let mut p = h.projector();
    let started = Instant::now();
    h.drive_to_head(&mut p, Duration::from_secs(600)).await;
    eprintln!(
        "[mixed] live projector catch-up from JetStream: {}",
        rate(u64::try_from(head).expect("head"), started.elapsed())
    );
    measure(&h, "mixed").await;
    let (oracle, _, _) = common::oracle(&h.db.pool).await;
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;
    h.nats.cleanup().await;
}
