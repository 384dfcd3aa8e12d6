//! How fast a blue/green rebuild fills a fresh index (ignored by default; run in release):
//!
//! ```sh
//! cargo test --release -p search --test rebuild_rate -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Generated messages (a Zipf-like vocabulary, 16 words and some 90 bytes a message, a few
//! CJK ones), applied to the staged copy in calls of 50,000 (one commit each, as the rebuild
//! driver's big batches), then `bulk_loaded` (Tantivy: the one merge). For comparison, the
//! same messages into a live index with the live writer's settings, commits of 10,000.
//! `REBUILD_RATE_MESSAGES` sets the count (default 300,000); OpenSearch is skipped with
//! `CHAT_OPENSEARCH=skip`.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use search::tantivy_index::WriterSettings;
use search::{Change, MessageDoc, OpenSearchIndex, SearchBackend, TantivyIndex};
use uuid::Uuid;

fn messages() -> Vec<Change> {
    let n: usize = std::env::var("REBUILD_RATE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let mut rng = StdRng::seed_from_u64(7);
    let syllables = [
        "ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "se", "wi", "du", "fe",
    ];
    let vocabulary: Vec<String> = (0..50_000)
        .map(|i: usize| {
            let mut w = String::new();
            let mut k = i + 1;
            while k > 0 {
                w.push_str(syllables[k % syllables.len()]);
                k /= syllables.len();
            }
            w
        })
        .collect();
    let rooms: Vec<Uuid> = (0..2_000).map(|_| Uuid::new_v4()).collect();
    let senders: Vec<Uuid> = (0..10_000).map(|_| Uuid::new_v4()).collect();
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    (0..n)
        .map(|i| {
            let p = i as i64 + 1;
            let body = if rng.random_bool(0.05) {
                "明天的会议取消了 東京タワー".to_owned()
            } else {
                (0..16)
                    .map(|_| {
                        // Zipf-like: rank ~ 1/u.
                        let u: f64 = rng.random_range(0.00002..1.0);
                        vocabulary[((1.0 / u) as usize).min(vocabulary.len()) - 1].as_str()
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            Change::Sent(MessageDoc {
                message_id: Uuid::new_v4(),
                room_id: rooms[rng.random_range(0..rooms.len())],
                seq: p,
                sender_id: senders[rng.random_range(0..senders.len())],
                sent_at: start + chrono::Duration::seconds(p),
                body,
                sent_position: p,
                position: p,
            })
        })
        .collect()
}

async fn fill(ix: &dyn SearchBackend, changes: &[Change], batch: usize) -> f64 {
    let started = Instant::now();
    let mut from = 0i64;
    for chunk in changes.chunks(batch) {
        let to = from + chunk.len() as i64;
        ix.apply(from, chunk.to_vec(), to).await.expect("apply");
        from = to;
    }
    started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
async fn tantivy_bulk_rebuild_rate() {
    let changes = messages();
    let n = changes.len() as f64;
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let live =
            TantivyIndex::open_writer(dir.path(), WriterSettings::default()).expect("writer");
        let took = fill(&live, &changes, 10_000).await;
        eprintln!(
            "tantivy live writer (1 thread, 64 MiB, merges as it goes), commits of 10,000: \
             {:.0} messages/s ({took:.1} s)",
            n / took
        );
    }
    let staged = TantivyIndex::stage_in(dir.path(), WriterSettings::bulk()).expect("stage");
    let copy = search::StagedIndex::copy(&staged);
    let load = fill(copy.as_ref(), &changes, 50_000).await;
    let started = Instant::now();
    search::StagedIndex::bulk_loaded(&staged)
        .await
        .expect("merge");
    let merge = started.elapsed().as_secs_f64();
    let settings = WriterSettings::bulk();
    eprintln!(
        "tantivy rebuild copy ({} threads, {} MiB, no merges), commits of 50,000: load {:.0} \
         messages/s ({load:.1} s), then one merge {merge:.1} s: {:.0} messages/s overall",
        settings.threads,
        settings.heap_bytes >> 20,
        n / load,
        n / (load + merge)
    );
    search::StagedIndex::abandon(Box::new(staged))
        .await
        .expect("abandon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
async fn opensearch_bulk_rebuild_rate() {
    let url =
        std::env::var("APP_OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".to_owned());
    let prefix = format!("rate-{}", Uuid::new_v4().simple());
    let live = OpenSearchIndex::new(&url, &prefix).expect("client");
    if let Err(e) = live.ensure().await {
        if std::env::var("CHAT_OPENSEARCH").as_deref() == Ok("skip") {
            eprintln!("OpenSearch: not run (CHAT_OPENSEARCH=skip; {e})");
            return;
        }
        panic!("OpenSearch at {url} is needed: {e}");
    }
    let changes = messages();
    let n = changes.len() as f64;
    let staged = live.stage_next().await.expect("stage");
    let copy = search::StagedIndex::copy(&staged);
    let load = fill(copy.as_ref(), &changes, 50_000).await;
    let started = Instant::now();
    let epoch = search::StagedIndex::switch(Box::new(staged))
        .await
        .expect("switch");
    let switch = started.elapsed().as_secs_f64();
    assert_eq!(epoch, 2);
    eprintln!(
        "opensearch rebuild copy (no refresh, no replicas, bulks of 5,000, two in flight), \
         calls of 50,000: load {:.0} messages/s ({load:.1} s), switch (settings, refresh, \
         alias) {switch:.1} s",
        n / load
    );
    live.delete_all().await.expect("clean up");
}
