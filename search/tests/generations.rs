//! Blue/green rebuilds of both backends, at the backend's level: a copy staged beside the live
//! index, filled, and switched while a live writer keeps writing and a reader keeps
//! searching; interrupted rebuilds; Tantivy's layout before generations. The projection's
//! side (the framework's replay, the live runner) is `projector/tests/blue_green_search.rs`.
//!
//! OpenSearch runs on the node at `APP_OPENSEARCH_URL` (default http://127.0.0.1:9200), each
//! test under an index prefix of its own; with `CHAT_OPENSEARCH=skip` and no node, its tests
//! say "OpenSearch: not run" instead.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use search::tantivy_index::WriterSettings;
use search::{
    Change, MessageDoc, OpenSearchIndex, SearchBackend, SearchError, SearchRequest, Sort,
    StagedIndex, TantivyIndex,
};
use uuid::Uuid;

/// A log of changes, one per position (position `p` is `changes[p - 1]`): sends, edits and
/// deletes in a few rooms, with a small vocabulary so that queries have many hits.
struct Log {
    changes: Vec<Change>,
    rooms: Vec<Uuid>,
}

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "epsilon", "report", "deploy", "東京", "会议", "café",
    "release", "planet",
];

impl Log {
    fn new(n: usize, seed: u64) -> Log {
        let mut rng = StdRng::seed_from_u64(seed);
        let rooms: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        let senders: Vec<Uuid> = (0..7).map(|_| Uuid::new_v4()).collect();
        let start = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("time");
        let mut live: Vec<Uuid> = Vec::new();
        let mut changes = Vec::with_capacity(n);
        let body = |rng: &mut StdRng| {
            (0..rng.random_range(2..7))
                .map(|_| *WORDS.choose(rng).expect("words"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        for i in 0..n {
            let p = i as i64 + 1;
            let roll = rng.random_range(0..100);
            let change = if roll < 70 || live.len() < 10 {
                let id = Uuid::new_v4();
                live.push(id);
                Change::Sent(MessageDoc {
                    message_id: id,
                    room_id: *rooms.choose(&mut rng).expect("rooms"),
                    seq: p,
                    sender_id: *senders.choose(&mut rng).expect("senders"),
                    sent_at: start + chrono::Duration::seconds(p),
                    body: body(&mut rng),
                    sent_position: p,
                    position: p,
                })
            } else if roll < 88 {
                Change::Edited {
                    message_id: *live.choose(&mut rng).expect("live"),
                    body: body(&mut rng),
                    position: p,
                }
            } else {
                let at = rng.random_range(0..live.len());
                Change::Deleted {
                    message_id: live.swap_remove(at),
                    position: p,
                }
            };
            changes.push(change);
        }
        Log { changes, rooms }
    }

    fn len(&self) -> i64 {
        self.changes.len() as i64
    }

    /// The changes of positions `from + 1 ..= to`.
    fn slice(&self, from: i64, to: i64) -> Vec<Change> {
        self.changes[from as usize..to as usize].to_vec()
    }
}

/// The framework's catch-up, in short: applies the log after `ix`'s checkpoint up to `upto`
/// in calls of `batch` events, continuing from the index's checkpoint after a gap (as the
/// framework does when a switch moved it). Returns the checkpoint reached.
async fn catch_up(ix: &dyn SearchBackend, log: &Log, upto: i64, batch: i64) -> i64 {
    let mut from = ix.checkpoint().await.expect("checkpoint");
    let mut unavailable = 0;
    while from < upto {
        let to = (from + batch).min(upto);
        match ix.apply(from, log.slice(from, to), to).await {
            Ok(()) => from = to,
            Err(SearchError::Gap { checkpoint, .. }) => from = checkpoint,
            // A write that met a switch half way: tried again, like any transient failure.
            Err(SearchError::Unavailable(e)) if unavailable < 5 => {
                unavailable += 1;
                eprintln!("apply: {e}");
            }
            Err(e) => panic!("apply {from}..{to}: {e:?}"),
        }
    }
    from
}

fn queries(log: &Log) -> Vec<SearchRequest> {
    [
        "alpha",
        "bet*",
        "\"gamma delta\"",
        "東京",
        "cafe report",
        "plan",
        "",
    ]
    .iter()
    .map(|q| SearchRequest {
        clauses: search::query::parse(q).expect("q").clauses,
        rooms: log.rooms.clone(),
        senders: Vec::new(),
        sent_from: None,
        sent_before: None,
        has_link: false,
        sort: Sort::Recent,
        limit: 5_000,
        snapshot: None,
        after: None,
    })
    .collect()
}

/// The hits of every query, as sets of message ids.
async fn hits(ix: &dyn SearchBackend, queries: &[SearchRequest]) -> Vec<HashSet<Uuid>> {
    let mut out = Vec::new();
    for q in queries {
        let page = ix.search(q.clone()).await.expect("search");
        assert!(!page.more, "a query has more hits than the test's limit");
        out.push(page.hits.into_iter().map(|h| h.doc.message_id).collect());
    }
    out
}

/// Polls `cond` every 10 ms until it holds; false after `within`.
async fn wait_until<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tantivy,
    OpenSearch,
}

/// The index of one test: a directory, or an OpenSearch prefix (deleted at the end).
struct Fixture {
    kind: Kind,
    dir: tempfile::TempDir,
    url: String,
    prefix: String,
}

impl Fixture {
    /// `None`: OpenSearch is not reachable and `CHAT_OPENSEARCH=skip`.
    async fn new(kind: Kind) -> Option<Fixture> {
        let fx = Fixture {
            kind,
            dir: tempfile::tempdir().expect("temp dir"),
            url: std::env::var("APP_OPENSEARCH_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:9200".to_owned()),
            prefix: format!("generations-{}", Uuid::new_v4().simple()),
        };
        if let Kind::OpenSearch = kind {
            let ix = OpenSearchIndex::new(&fx.url, &fx.prefix).expect("client");
            match ix.ensure().await {
                Ok(()) => {}
                Err(SearchError::Unavailable(e))
                    if std::env::var("CHAT_OPENSEARCH").as_deref() == Ok("skip") =>
                {
                    eprintln!("OpenSearch: not run (CHAT_OPENSEARCH=skip; {e})");
                    return None;
                }
                Err(e) => panic!(
                    "OpenSearch at {} is needed by this test: start it with \
                     `bash scripts/opensearch.sh` (or set CHAT_OPENSEARCH=skip): {e}",
                    fx.url
                ),
            }
        }
        Some(fx)
    }

    /// The live writer (a process of its own, as far as the index can tell).
    fn writer(&self) -> Arc<dyn SearchBackend> {
        match self.kind {
            Kind::Tantivy => Arc::new(
                TantivyIndex::open_writer(self.dir.path(), WriterSettings::default())
                    .expect("writer"),
            ),
            Kind::OpenSearch => {
                Arc::new(OpenSearchIndex::new(&self.url, &self.prefix).expect("client"))
            }
        }
    }

    /// A reader (a query API).
    fn reader(&self) -> Arc<dyn SearchBackend> {
        match self.kind {
            Kind::Tantivy => Arc::new(TantivyIndex::open_reader(self.dir.path()).expect("reader")),
            Kind::OpenSearch => {
                Arc::new(OpenSearchIndex::new(&self.url, &self.prefix).expect("client"))
            }
        }
    }

    /// A rebuild, started from a handle of its own (another process).
    async fn stage(&self) -> Box<dyn StagedIndex> {
        let handle: Box<dyn SearchBackend> = match self.kind {
            Kind::Tantivy => Box::new(TantivyIndex::open_reader(self.dir.path()).expect("reader")),
            Kind::OpenSearch => {
                Box::new(OpenSearchIndex::new(&self.url, &self.prefix).expect("client"))
            }
        };
        handle.stage().await.expect("stage")
    }

    /// An index holding the first `upto` changes of `log`, built in one go elsewhere: what
    /// every index must answer once it is at `upto`.
    async fn reference(&self, log: &Log, upto: i64) -> (Arc<dyn SearchBackend>, Option<Fixture>) {
        let other = Fixture::new(self.kind)
            .await
            .expect("the same backend again");
        let ix = other.writer();
        catch_up(ix.as_ref(), log, upto, 1_000).await;
        ix.visible_position(upto).await.expect("visible");
        (ix, Some(other))
    }

    async fn cleanup(self) {
        if let Kind::OpenSearch = self.kind {
            OpenSearchIndex::new(&self.url, &self.prefix)
                .expect("client")
                .delete_all()
                .await
                .expect("delete the test's indexes");
        }
    }
}

/// What the live writer and the reader did in the background.
#[derive(Default)]
struct Traffic {
    stop: AtomicBool,
    /// The log's head: the live writer "appends" a few events, then applies them.
    head: AtomicI64,
    /// Batches the live writer committed.
    batches: AtomicU64,
    searches: AtomicU64,
    errors: AtomicU64,
}

/// The live writer: appends 20 events to the log's head at a time and applies them, as the
/// live projection would, until stopped (or the log is used up).
fn spawn_live_writer(
    ix: Arc<dyn SearchBackend>,
    log: Arc<Log>,
    traffic: Arc<Traffic>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !traffic.stop.load(Ordering::Acquire) {
            let head = (traffic.head.load(Ordering::Acquire) + 20).min(log.len());
            traffic.head.store(head, Ordering::Release);
            catch_up(ix.as_ref(), &log, head, 20).await;
            traffic.batches.fetch_add(1, Ordering::AcqRel);
            if head == log.len() {
                break;
            }
        }
    })
}

/// The reader: runs the queries over and over until stopped, counting failures.
fn spawn_reader(
    ix: Arc<dyn SearchBackend>,
    queries: Vec<SearchRequest>,
    traffic: Arc<Traffic>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !traffic.stop.load(Ordering::Acquire) {
            for q in &queries {
                match ix.search(q.clone()).await {
                    Ok(_) => traffic.searches.fetch_add(1, Ordering::AcqRel),
                    Err(e) => {
                        eprintln!("search failed: {e}");
                        traffic.errors.fetch_add(1, Ordering::AcqRel)
                    }
                };
            }
        }
    })
}

async fn a_switch_under_a_live_writer_and_a_reader(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let log = Arc::new(Log::new(8_000, 1));
    let queries = queries(&log);
    let live = fx.writer();
    let reader = fx.reader();
    assert_eq!(live.epoch().await.expect("epoch"), 1);
    // The live index holds the first 3,000 events.
    catch_up(live.as_ref(), &log, 3_000, 500).await;
    let traffic = Arc::new(Traffic::default());
    traffic.head.store(3_000, Ordering::Release);
    let writing = spawn_live_writer(live.clone(), log.clone(), traffic.clone());
    let reading = spawn_reader(reader.clone(), queries.clone(), traffic.clone());

    // The rebuild, another handle: bulk, merge, catch-up, hold, last stretch, switch.
    let staged = fx.stage().await;
    assert_eq!(staged.epoch(), 2);
    let copy = staged.copy();
    let head = traffic.head.load(Ordering::Acquire);
    catch_up(copy.as_ref(), &log, head, 2_000).await;
    staged.bulk_loaded().await.expect("bulk loaded");
    catch_up(
        copy.as_ref(),
        &log,
        traffic.head.load(Ordering::Acquire),
        2_000,
    )
    .await;
    let batches_before_hold = traffic.batches.load(Ordering::Acquire);
    staged.hold().await.expect("hold");
    let caught_up = loop {
        let at = catch_up(
            copy.as_ref(),
            &log,
            traffic.head.load(Ordering::Acquire),
            2_000,
        )
        .await;
        if at >= staged.live_checkpoint().await.expect("live checkpoint") {
            break at;
        }
    };
    let after = staged.catch_up_after_switch();
    assert_eq!(staged.switch().await.expect("switch"), 2);
    if after {
        catch_up(
            copy.as_ref(),
            &log,
            traffic.head.load(Ordering::Acquire),
            2_000,
        )
        .await;
    }
    // The live writer, held during the last stretch, writes again after the switch (it may
    // not have committed its next batch yet when the switch returns: wait, bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !after && traffic.batches.load(Ordering::Acquire) <= batches_before_hold {
        assert!(
            std::time::Instant::now() < deadline,
            "the live writer did not write again after the switch"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // The live writer keeps going on the new index; the reader moves to it.
    let switched_at = traffic.batches.load(Ordering::Acquire);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            traffic.batches.load(Ordering::Acquire) >= switched_at + 10
        })
        .await,
        "the live writer did not continue after the switch"
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            reader.epoch().await.expect("epoch") == 2
        })
        .await,
        "the reader did not move to the new index"
    );
    traffic.stop.store(true, Ordering::Release);
    writing.await.expect("live writer");
    reading.await.expect("reader");
    let head = traffic.head.load(Ordering::Acquire);
    assert!(head > caught_up, "events were written after the switch");
    assert_eq!(live.epoch().await.expect("epoch"), 2);
    assert_eq!(live.checkpoint().await.expect("checkpoint"), head);
    assert_eq!(
        traffic.errors.load(Ordering::Acquire),
        0,
        "searches failed during the rebuild"
    );
    assert!(traffic.searches.load(Ordering::Acquire) > 0);

    // Nothing lost, nothing stale: the same hits as an index built in one go.
    reader.visible_position(head).await.expect("visible");
    live.visible_position(head).await.expect("visible");
    let (reference, other) = fx.reference(&log, head).await;
    let expected = hits(reference.as_ref(), &queries).await;
    assert!(
        expected.iter().all(|h| !h.is_empty()),
        "every query has hits"
    );
    assert_eq!(
        hits(reader.as_ref(), &queries).await,
        expected,
        "the reader's hits"
    );
    assert_eq!(
        hits(live.as_ref(), &queries).await,
        expected,
        "the writer's hits"
    );
    if let Kind::Tantivy = kind {
        let root = fx.dir.path();
        assert_eq!(
            search::generations::read_pointer(root).expect("pointer"),
            Some(2)
        );
        assert_eq!(
            search::generations::generations(root).expect("generations"),
            vec![2],
            "the live writer deleted the old generation when it moved"
        );
    }
    if let Some(other) = other {
        other.cleanup().await;
    }
    fx.cleanup().await;
}

async fn an_interrupted_rebuild_leaves_the_live_index_untouched(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let log = Log::new(3_000, 2);
    let queries = queries(&log);
    let live = fx.writer();
    catch_up(live.as_ref(), &log, 1_500, 500).await;
    live.visible_position(1_500).await.expect("visible");
    let before = hits(live.as_ref(), &queries).await;

    // Staged, half filled, then the process "dies": dropped without a switch.
    let staged = fx.stage().await;
    catch_up(staged.copy().as_ref(), &log, 700, 350).await;
    drop(staged);
    assert_eq!(live.epoch().await.expect("epoch"), 1);
    assert_eq!(live.checkpoint().await.expect("checkpoint"), 1_500);
    assert_eq!(hits(live.as_ref(), &queries).await, before, "untouched");
    // The live writer goes on as before.
    catch_up(live.as_ref(), &log, 2_000, 500).await;

    // Started again, it deletes the leftover and finishes.
    let staged = fx.stage().await;
    assert_eq!(staged.epoch(), 2);
    let copy = staged.copy();
    assert_eq!(
        copy.checkpoint().await.expect("checkpoint"),
        0,
        "a fresh copy"
    );
    catch_up(copy.as_ref(), &log, 2_000, 1_000).await;
    staged.bulk_loaded().await.expect("bulk loaded");
    staged.hold().await.expect("hold");
    assert_eq!(staged.live_checkpoint().await.expect("live"), 2_000);
    assert_eq!(staged.switch().await.expect("switch"), 2);
    // An abandoned rebuild leaves nothing behind either.
    let third = fx.stage().await;
    catch_up(third.copy().as_ref(), &log, 100, 100).await;
    third.abandon().await.expect("abandon");
    // The live writer follows the switch made by the other handle and continues.
    catch_up(live.as_ref(), &log, 3_000, 500).await;
    assert_eq!(live.epoch().await.expect("epoch"), 2);
    live.visible_position(3_000).await.expect("visible");
    let (reference, other) = fx.reference(&log, 3_000).await;
    assert_eq!(
        hits(live.as_ref(), &queries).await,
        hits(reference.as_ref(), &queries).await
    );
    if let Kind::Tantivy = kind {
        assert_eq!(
            search::generations::generations(fx.dir.path()).expect("generations"),
            vec![2]
        );
    }
    if let Some(other) = other {
        other.cleanup().await;
    }
    fx.cleanup().await;
}

macro_rules! both {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_switch_under_a_live_writer_and_a_reader() {
                super::a_switch_under_a_live_writer_and_a_reader($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_interrupted_rebuild_leaves_the_live_index_untouched() {
                super::an_interrupted_rebuild_leaves_the_live_index_untouched($kind).await;
            }
        }
    };
}

both!(tantivy, Kind::Tantivy);
both!(opensearch, Kind::OpenSearch);

/// An index written before generations (its files in the directory itself) is generation 1:
/// a reader opens it where it is, the writer moves it into `gen-1/`, and the reader follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layout_before_generations_is_generation_1_and_moves_under_its_readers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let log = Log::new(1_000, 3);
    let queries = queries(&log);
    {
        let ix = TantivyIndex::open_writer(root, WriterSettings::default()).expect("writer");
        catch_up(&ix, &log, 800, 400).await;
    }
    // Make it the old layout: the generation's files in the root, no pointer.
    let gen1 = root.join("gen-1");
    for entry in std::fs::read_dir(&gen1).expect("gen-1") {
        let entry = entry.expect("entry");
        std::fs::rename(entry.path(), root.join(entry.file_name())).expect("move");
    }
    std::fs::remove_dir(&gen1).expect("remove gen-1");
    std::fs::remove_file(root.join(search::generations::POINTER)).expect("remove the pointer");

    let reader = TantivyIndex::open_reader(root).expect("reader of the old layout");
    assert_eq!(reader.epoch().await.expect("epoch"), 1);
    assert_eq!(reader.checkpoint().await.expect("checkpoint"), 800);
    let before = hits(&reader, &queries).await;
    assert!(before.iter().any(|h| !h.is_empty()));

    let writer = TantivyIndex::open_writer(root, WriterSettings::default()).expect("writer");
    assert_eq!(
        search::generations::read_pointer(root).expect("pointer"),
        Some(1)
    );
    assert!(!root.join("meta.json").exists(), "the old names are gone");
    assert!(gen1.join("meta.json").exists());
    assert_eq!(writer.checkpoint().await.expect("checkpoint"), 800);
    // The reader searches on, now in gen-1/, and sees what the writer adds there.
    assert_eq!(hits(&reader, &queries).await, before);
    catch_up(&writer, &log, 1_000, 200).await;
    assert!(reader.visible_position(1_000).await.expect("visible") >= 1_000);
    assert_eq!(hits(&reader, &queries).await, hits(&writer, &queries).await);
}
