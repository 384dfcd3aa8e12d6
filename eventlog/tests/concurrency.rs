#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::request;
use eventlog::testing::TestDb;
use eventlog::{AppendError, EventStore, ExpectedVersion, GroupCommitConfig, PgEventStore};

const HOT_WRITERS: usize = 50;
const HOT_APPENDS_PER_WRITER: usize = 10;
const OWN_WRITERS: usize = 50;
const OWN_APPENDS_PER_WRITER: usize = 100;
const EVENTS_PER_OWN_APPEND: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_writers_produce_gapless_positions_and_a_polling_reader_sees_every_event_once_in_order()
 {
    let started = Instant::now();
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let done = Arc::new(AtomicBool::new(false));

    // The reader polls "position > last" while the writers run.
    let reader = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0i64;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.read_all(last, 1000).await.unwrap();
                for e in &page {
                    last = e.position;
                }
                let empty = page.is_empty();
                seen.extend(page);
                if empty {
                    if finished {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };

    let mut writers = Vec::new();
    // 50 writers on ONE stream: read the version, append with Exact, retry on Conflict.
    for _ in 0..HOT_WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut known = 0i64;
            let mut conflicts = 0usize;
            for _ in 0..HOT_APPENDS_PER_WRITER {
                loop {
                    let newer = store.read_stream("hot", known, 10_000).await.unwrap();
                    if let Some(last) = newer.last() {
                        known = last.version;
                    }
                    match store
                        .append(request("hot", ExpectedVersion::Exact(known), 1))
                        .await
                    {
                        Ok(a) => {
                            assert_eq!(a.first_version, known + 1);
                            known = a.last_version;
                            break;
                        }
                        Err(AppendError::Conflict { .. }) => conflicts += 1,
                        Err(other) => panic!("append failed: {other:?}"),
                    }
                }
            }
            conflicts
        }));
    }
    // 50 writers each on its own stream.
    for w in 0..OWN_WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let stream = format!("own-{w}");
            let mut version = 0i64;
            for _ in 0..OWN_APPENDS_PER_WRITER {
                let expected = if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                };
                let a = store
                    .append(request(&stream, expected, EVENTS_PER_OWN_APPEND))
                    .await
                    .unwrap();
                assert_eq!(a.first_version, version + 1);
                version = a.last_version;
            }
            0usize
        }));
    }
    let mut conflicts = 0;
    for w in writers {
        conflicts += w.await.unwrap();
    }
    let writes_done = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let expected_total = HOT_WRITERS * HOT_APPENDS_PER_WRITER
        + OWN_WRITERS * OWN_APPENDS_PER_WRITER * EVENTS_PER_OWN_APPEND;
    assert!(expected_total >= 10_000);
    let all = store.read_all(0, 1_000_000).await.unwrap();
    assert_eq!(all.len(), expected_total);
    assert_eq!(store.head_position().await.unwrap(), expected_total as i64);

    // Positions are 1..N, gapless.
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, i as i64 + 1);
    }
    // Per-stream versions are 1..n, contiguous, in position order.
    let mut per_stream: HashMap<&str, i64> = HashMap::new();
    for e in &all {
        let v = per_stream.entry(e.stream_id.as_str()).or_insert(0);
        assert_eq!(e.version, *v + 1, "stream {} not contiguous", e.stream_id);
        *v = e.version;
    }
    assert_eq!(
        per_stream["hot"],
        (HOT_WRITERS * HOT_APPENDS_PER_WRITER) as i64
    );
    for w in 0..OWN_WRITERS {
        assert_eq!(
            per_stream[format!("own-{w}").as_str()],
            (OWN_APPENDS_PER_WRITER * EVENTS_PER_OWN_APPEND) as i64
        );
    }
    // The reader saw every committed event exactly once, in order.
    assert_eq!(seen.len(), all.len(), "reader missed or duplicated events");
    assert_eq!(seen, all);

    eprintln!(
        "{expected_total} events, {conflicts} conflicts on the hot stream, writes took {writes_done:?}, total {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}
