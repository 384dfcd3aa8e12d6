//! `rebuild --all` after a mixed workload (50,000 events unless `CHAT_REBUILD_EVENTS` says
//! otherwise; `scripts/test.sh` runs it with fewer), through the command's own code path
//! (`projector::startup::rebuild`, what `projector rebuild --all` and `chat rebuild --all`
//! run) while the projector process keeps running both projections: the read models end
//! identical to the live ones, row for row, and the search index answers a fixed set of
//! queries with the same hits.

mod common;

use std::time::{Duration, Instant};

use common::Harness;
use search::{SearchBackend, SearchRequest, Sort};

/// The fixed queries over the workload's bodies ("message <n>", edited to "edited <n>"):
/// words, prefixes (of a word and of a number), phrases, and one that finds nothing.
const QUERIES: &[&str] = &[
    "message",
    "edited",
    "mess*",
    "\"edited\"",
    "12*",
    "no-such-word",
];

/// Events in the workload: 50,000 by default (the acceptance run, about five minutes in a
/// debug build); `CHAT_REBUILD_EVENTS` sets another number.
fn workload() -> usize {
    std::env::var("CHAT_REBUILD_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50_000)
}

/// Every hit of `q` in `rooms`, newest first, as (message id, body), paged to the end.
async fn hits(
    index: &dyn SearchBackend,
    q: &str,
    rooms: &[uuid::Uuid],
) -> Vec<(uuid::Uuid, String)> {
    let parsed = search::query::parse(q).expect("query");
    let mut req = SearchRequest {
        clauses: parsed.clauses,
        rooms: rooms.to_vec(),
        senders: Vec::new(),
        sent_from: None,
        sent_before: None,
        has_link: false,
        sort: Sort::Recent,
        limit: 200,
        snapshot: None,
        after: None,
    };
    let mut out = Vec::new();
    loop {
        let page = index.search(req.clone()).await.expect("search");
        out.extend(
            page.hits
                .iter()
                .map(|h| (h.doc.message_id, h.doc.body.clone())),
        );
        let (Some(last), true) = (page.hits.last(), page.more) else {
            return out;
        };
        req.after = Some(search::After {
            score: None,
            sent_position: last.doc.sent_position,
        });
        req.snapshot = Some(page.snapshot);
    }
}

/// Waits until `index` (a reader) has every event up to `position`.
async fn index_reaches(index: &dyn SearchBackend, position: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while index.visible_position(position).await.expect("visible") < position {
        assert!(
            Instant::now() < deadline,
            "the index did not reach {position}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_all_after_a_mixed_workload_changes_no_row_and_no_hit() {
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 200, 40, 20, 51).await;
    let events = workload();
    common::random_load(&h.store, users, rooms, events, 4, 52).await;
    let head = h.head().await;
    assert!(head >= i64::try_from(events).expect("events"));
    let (stop_relay, relay) = h.spawn_relay();

    // The live projector process, every registered projection.
    let app = projector::startup::build(h.settings(), &[])
        .await
        .expect("projector");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let reader = h.settings().search.open_reader().expect("search reader");
    let deadline = Instant::now() + Duration::from_secs(300);
    while h.checkpoint().await < head {
        assert!(
            Instant::now() < deadline,
            "the read models did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    index_reaches(&*reader, head).await;
    let rooms: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT room_id FROM rm_rooms")
        .fetch_all(&h.db.pool)
        .await
        .expect("rooms");
    let live = projector::oracle::snapshot(&h.db.pool)
        .await
        .expect("snapshot");
    let mut live_hits = Vec::new();
    for q in QUERIES {
        live_hits.push(hits(&*reader, q, &rooms).await);
    }
    let counts: Vec<usize> = live_hits.iter().map(Vec::len).collect();
    assert!(
        counts[..5].iter().all(|&n| n > 0) && counts[5] == 0,
        "hits per query: {counts:?}"
    );

    let lines = projector::startup::rebuild(&h.settings(), &[], &|_| {})
        .await
        .expect("rebuild --all");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("rebuilt read_models: "), "{lines:?}");
    assert!(lines[1].starts_with("rebuilt search: "), "{lines:?}");

    let rebuilt = projector::oracle::snapshot(&h.db.pool)
        .await
        .expect("snapshot");
    let (differ, examples) = projector::oracle::diff(&live, &rebuilt, 10);
    let rows: usize = live.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(
        differ,
        0,
        "{differ} of {rows} rows differ: {}",
        examples.join("\n")
    );
    index_reaches(&*reader, head).await;
    for (q, before) in QUERIES.iter().zip(&live_hits) {
        assert_eq!(&hits(&*reader, q, &rooms).await, before, "hits of {q}");
    }
    eprintln!(
        "rebuild --all over {head} events: {rows} read-model rows and the hits of {} queries \
         ({counts:?}) unchanged; {}",
        QUERIES.len(),
        lines.join("; ")
    );

    let _ = stop.send(());
    running.await.expect("join").expect("run");
    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}
