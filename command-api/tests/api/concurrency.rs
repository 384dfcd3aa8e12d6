//! Many concurrent writers through the HTTP API: versions and seqs stay
//! contiguous, and a reader following positions never skips an event.

use crate::helpers::TestApp;
use eventlog::EventStore;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const WRITERS: usize = 50;
const PER_WRITER: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_writers_in_one_room_and_fifty_in_their_own_keep_order_and_lose_nothing() {
    let app = Arc::new(TestApp::spawn().await);
    let user = app.register("writer").await;
    let hot = app.create_room(&user, "public").await;
    let mut own = Vec::new();
    for _ in 0..WRITERS {
        own.push(app.create_room(&user, "public").await);
    }

    // A reader following the log by position while the writers run.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = app.state.store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            let mut last = 0;
            // Polls like a subscriber would: at once while there is more, every
            // millisecond when caught up.
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
            loop {
                let finished = done.load(Ordering::Acquire);
                let page = store.read_all(last, 1000).await.expect("read_all");
                for e in &page {
                    seen.push(e.position);
                    last = e.position;
                }
                if page.is_empty() {
                    if finished {
                        return seen;
                    }
                    tick.tick().await;
                }
            }
        })
    };

    let mut tasks = Vec::new();
    for w in 0..WRITERS * 2 {
        let app = app.clone();
        let token = user.token.clone();
        let room = if w < WRITERS { hot } else { own[w - WRITERS] };
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::with_capacity(PER_WRITER);
            for i in 0..PER_WRITER {
                let res = app
                    .post(
                        &format!("/v1/rooms/{room}/messages"),
                        Some(&token),
                        json!({ "client_msg_id": format!("w{w}-{i}"), "body": format!("message {i} from {w}") }),
                    )
                    .await;
                let body = res.assert_status(201);
                positions.push(body["position"].as_i64().expect("position"));
            }
            positions
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.expect("writer"));
    }
    done.store(true, Ordering::Release);
    let seen = reader.await.expect("reader");

    let head = app.state.store.head_position().await.expect("head");
    let expected_events = 1 + WRITERS as i64 * (2 * PER_WRITER as i64) + (WRITERS as i64 + 1) * 2;
    assert_eq!(
        head, expected_events,
        "every command appended exactly its events"
    );
    assert!(head >= 10_000);
    // The reader saw positions 1..=head, each once, in order: nothing skipped.
    assert_eq!(seen, (1..=head).collect::<Vec<_>>());
    // Every acknowledged message is in the log at the position it was acknowledged with.
    acknowledged.sort_unstable();
    acknowledged.dedup();
    assert_eq!(acknowledged.len(), WRITERS * 2 * PER_WRITER);

    // Per-stream versions are 1..n and per-room seqs 1..m, without gaps or repeats.
    let bad_versions: Vec<(String,)> = sqlx::query_as(
        "SELECT stream_id FROM events GROUP BY stream_id
         HAVING min(version) <> 1 OR max(version) <> count(*) OR count(DISTINCT version) <> count(*)",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("versions");
    assert!(
        bad_versions.is_empty(),
        "gaps in versions: {bad_versions:?}"
    );
    let seqs: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT stream_id, count(*), count(DISTINCT (data->>'seq')::bigint), max((data->>'seq')::bigint)
         FROM events WHERE event_type = 'MessageSent' GROUP BY stream_id",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("seqs");
    assert_eq!(seqs.len(), WRITERS + 1);
    for (stream, n, distinct, max) in seqs {
        assert_eq!((n, distinct, max), (n, n, n), "seq gap in {stream}");
        let expected = if stream == format!("room-{hot}") {
            (WRITERS * PER_WRITER) as i64
        } else {
            PER_WRITER as i64
        };
        assert_eq!(n, expected, "{stream}");
    }
    match Arc::try_unwrap(app) {
        Ok(app) => app.cleanup().await,
        Err(_) => panic!("app still shared"),
    }
}
