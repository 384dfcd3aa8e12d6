//! How long Tantivy takes to expire the oldest messages of a long room (ignored by default; run
//! in release):
//!
//! ```sh
//! cargo test --release -p search --test expiry_rate -- --ignored --nocapture
//! ```
//!
//! One room of `EXPIRY_RATE_MESSAGES` messages (default 200,000) beside another room of the
//! same size, committed in calls of 10,000; then a `RoomExpired` of the oldest 1 % of the
//! first room, and of the next 1 % after it, each applied and timed on its own (an expiry is
//! one `apply`, one commit, as the live search projection makes it). Checks what is left.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use search::tantivy_index::WriterSettings;
use search::{Change, Clause, MessageDoc, SearchBackend, SearchRequest, Sort, TantivyIndex};
use uuid::Uuid;

#[tokio::test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
async fn expiring_the_oldest_messages_of_a_long_room() {
    let n: i64 = std::env::var("EXPIRY_RATE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let ix = TantivyIndex::open_writer(dir.path(), WriterSettings::default()).expect("index");
    let (room, other, sender) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    // Both rooms' messages interleaved in the log, as a busy server's are.
    let doc = |i: i64| {
        Change::Sent(MessageDoc {
            message_id: Uuid::new_v4(),
            room_id: if i % 2 == 0 { room } else { other },
            seq: i / 2 + 1,
            sender_id: sender,
            sent_at: start + chrono::Duration::seconds(i),
            body: format!("message w{i}q of a long room"),
            sent_position: i + 1,
            position: i + 1,
        })
    };
    let total = 2 * n;
    let loaded = Instant::now();
    let mut at = 0i64;
    while at < total {
        let to = (at + 10_000).min(total);
        ix.apply(at, (at..to).map(doc).collect(), to)
            .await
            .expect("load");
        at = to;
    }
    eprintln!(
        "loaded {total} messages in two rooms in {:.1} s",
        loaded.elapsed().as_secs_f64()
    );
    let step = n / 100;
    for k in 1..=2i64 {
        let expired = Change::RoomExpired {
            room_id: room,
            up_to_seq: k * step,
            position: at + 1,
        };
        let t = Instant::now();
        ix.apply(at, vec![expired], at + 1).await.expect("expire");
        let took = t.elapsed();
        at += 1;
        ix.visible_position(at).await.expect("visible");
        eprintln!(
            "expiry {k}: messages up to seq {} of {n} in {:.1} ms",
            k * step,
            took.as_secs_f64() * 1e3
        );
    }
    // The last expired message of the room is gone; the next one, and the other room's
    // oldest, are there.
    let found = |i: i64, room_id: Uuid| {
        let ix = &ix;
        async move {
            let req = SearchRequest {
                clauses: vec![Clause::Word(format!("w{i}q"))],
                rooms: vec![room_id],
                senders: Vec::new(),
                sent_from: None,
                sent_before: None,
                has_link: false,
                sort: Sort::Recent,
                limit: 10,
                snapshot: None,
                after: None,
            };
            ix.search(req).await.expect("search").hits.len()
        }
    };
    // Message i of `room` has seq i / 2 + 1.
    let last_expired = 2 * (2 * step - 1);
    assert_eq!(found(0, room).await, 0);
    assert_eq!(found(last_expired, room).await, 0);
    assert_eq!(found(last_expired + 2, room).await, 1);
    assert_eq!(found(1, other).await, 1);
}
