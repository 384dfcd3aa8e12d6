//! The contract every search backend passes, run against the embedded Tantivy index and a real
//! OpenSearch node (`scripts/opensearch.sh` starts one; `APP_OPENSEARCH_URL`, default
//! http://127.0.0.1:9200). Without a node the OpenSearch half fails, unless
//! `CHAT_OPENSEARCH=skip`, when it says "OpenSearch: not run" instead.
//!
//! Each test gets its own index (a temporary directory, or an index prefix of its own), so the
//! tests run in parallel and leave nothing behind.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use search::tantivy_index::WriterSettings;
use search::{
    After, Change, Clause, MessageDoc, OpenSearchIndex, SearchBackend, SearchError, SearchPage,
    SearchRequest, Sort, TantivyIndex,
};
use uuid::Uuid;

enum Fixture {
    Tantivy {
        dir: tempfile::TempDir,
        index: TantivyIndex,
    },
    OpenSearch {
        url: String,
        prefix: String,
        index: Box<OpenSearchIndex>,
    },
}

#[derive(Clone, Copy)]
enum Kind {
    Tantivy,
    OpenSearch,
}

fn opensearch_url() -> String {
    std::env::var("APP_OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".to_owned())
}

impl Fixture {
    /// `None`: OpenSearch is not reachable and `CHAT_OPENSEARCH=skip`.
    async fn new(kind: Kind) -> Option<Fixture> {
        match kind {
            Kind::Tantivy => {
                let dir = tempfile::tempdir().expect("temp dir");
                let index = TantivyIndex::open_writer(dir.path(), WriterSettings::default())
                    .expect("open the index");
                Some(Fixture::Tantivy { dir, index })
            }
            Kind::OpenSearch => {
                let url = opensearch_url();
                let prefix = format!("contract-{}", Uuid::new_v4().simple());
                let index = OpenSearchIndex::new(&url, &prefix).expect("client");
                match index.ensure().await {
                    Ok(()) => Some(Fixture::OpenSearch {
                        url,
                        prefix,
                        index: Box::new(index),
                    }),
                    Err(SearchError::Unavailable(e))
                        if std::env::var("CHAT_OPENSEARCH").as_deref() == Ok("skip") =>
                    {
                        eprintln!("OpenSearch: not run (CHAT_OPENSEARCH=skip; {e})");
                        None
                    }
                    Err(e) => panic!(
                        "OpenSearch at {url} is needed by this test: start it with \
                         `bash scripts/opensearch.sh` (or set CHAT_OPENSEARCH=skip): {e}"
                    ),
                }
            }
        }
    }

    fn ix(&self) -> &dyn SearchBackend {
        match self {
            Fixture::Tantivy { index, .. } => index,
            Fixture::OpenSearch { index, .. } => index.as_ref(),
        }
    }

    /// What a crash between writing documents and the checkpoint leaves.
    async fn rewind(&self, to: i64) {
        match self {
            Fixture::Tantivy { index, .. } => index.rewind_checkpoint(to).await,
            Fixture::OpenSearch { index, .. } => index.rewind_checkpoint(to).await,
        }
        .expect("rewind");
    }

    /// A batch delivered again after a crash between its documents and its checkpoint (at
    /// least once): the checkpoint rewound to `from`, then `changes` applied up to `to` and
    /// made visible.
    async fn replay(&self, from: i64, changes: Vec<Change>, to: i64, what: &str) {
        self.rewind(from).await;
        let ix = self.ix();
        ix.apply(from, changes, to)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        ix.visible_position(to).await.expect("visible");
    }

    /// Only the changes of `batch` that `keep` picks (the older kinds, say).
    fn only(batch: &[Change], keep: impl Fn(&Change) -> bool) -> Vec<Change> {
        batch.iter().filter(|c| keep(c)).cloned().collect()
    }

    /// The writer closed and opened again, as after a restart.
    fn reopen(self) -> Fixture {
        match self {
            Fixture::Tantivy { dir, index } => {
                drop(index);
                let index = TantivyIndex::open_writer(dir.path(), WriterSettings::default())
                    .expect("reopen");
                Fixture::Tantivy { dir, index }
            }
            Fixture::OpenSearch { url, prefix, .. } => {
                let index = Box::new(OpenSearchIndex::new(&url, &prefix).expect("client"));
                Fixture::OpenSearch { url, prefix, index }
            }
        }
    }

    /// A reader in another process (the query API's).
    fn reader(&self) -> Box<dyn SearchBackend> {
        match self {
            Fixture::Tantivy { dir, .. } => {
                Box::new(TantivyIndex::open_reader(dir.path()).expect("reader"))
            }
            Fixture::OpenSearch { url, prefix, .. } => {
                Box::new(OpenSearchIndex::new(url, prefix).expect("client"))
            }
        }
    }

    async fn cleanup(self) {
        if let Fixture::OpenSearch { index, .. } = self {
            index.delete_all().await.expect("delete the test's indexes");
        }
    }
}

/// Events as the projection would hand them over: positions counted up, applied in batches.
struct Log {
    next: i64,
    committed: i64,
    pending: Vec<Change>,
    start: DateTime<Utc>,
}

impl Log {
    fn new() -> Log {
        Log {
            next: 1,
            committed: 0,
            pending: Vec::new(),
            start: Utc
                .with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
                .single()
                .expect("time"),
        }
    }

    fn position(&mut self) -> i64 {
        let p = self.next;
        self.next += 1;
        p
    }

    fn send(&mut self, room: Uuid, sender: Uuid, body: &str) -> Uuid {
        let at = self.start + Duration::minutes(self.next);
        self.send_at(room, sender, body, at)
    }

    fn send_at(&mut self, room: Uuid, sender: Uuid, body: &str, sent_at: DateTime<Utc>) -> Uuid {
        let p = self.position();
        let id = Uuid::new_v4();
        self.pending.push(Change::Sent(MessageDoc {
            message_id: id,
            room_id: room,
            seq: p,
            sender_id: sender,
            sent_at,
            body: body.to_owned(),
            sent_position: p,
            position: p,
        }));
        id
    }

    fn edit(&mut self, message_id: Uuid, body: &str) {
        let position = self.position();
        self.pending.push(Change::Edited {
            message_id,
            body: body.to_owned(),
            position,
        });
    }

    fn delete(&mut self, message_id: Uuid) {
        let position = self.position();
        self.pending.push(Change::Deleted {
            message_id,
            position,
        });
    }

    fn erase(&mut self, sender_id: Uuid) {
        let position = self.position();
        self.pending.push(Change::SenderErased {
            sender_id,
            position,
        });
    }

    /// The room's messages up to `up_to_seq` expire (its retention).
    fn expire(&mut self, room_id: Uuid, up_to_seq: i64) {
        let position = self.position();
        self.pending.push(Change::RoomExpired {
            room_id,
            up_to_seq,
            position,
        });
    }

    /// Applies the pending changes in one call and waits until searches see them.
    async fn commit(&mut self, ix: &dyn SearchBackend) {
        let to = self.next - 1;
        ix.apply(self.committed, std::mem::take(&mut self.pending), to)
            .await
            .expect("apply");
        self.committed = to;
        ix.visible_position(to).await.expect("visible");
    }
}

fn request(q: &str, rooms: &[Uuid]) -> SearchRequest {
    SearchRequest {
        clauses: search::query::parse(q).expect("q").clauses,
        rooms: rooms.to_vec(),
        senders: Vec::new(),
        sent_from: None,
        sent_before: None,
        has_link: false,
        sort: Sort::Relevance,
        limit: 100,
        snapshot: None,
        after: None,
    }
}

async fn page(ix: &dyn SearchBackend, req: SearchRequest) -> SearchPage {
    ix.search(req).await.expect("search")
}

async fn ids(ix: &dyn SearchBackend, req: SearchRequest) -> HashSet<Uuid> {
    page(ix, req)
        .await
        .hits
        .into_iter()
        .map(|h| h.doc.message_id)
        .collect()
}

async fn find(ix: &dyn SearchBackend, q: &str, rooms: &[Uuid]) -> HashSet<Uuid> {
    ids(ix, request(q, rooms)).await
}

fn set(ids: &[Uuid]) -> HashSet<Uuid> {
    ids.iter().copied().collect()
}

async fn words_partial_words_case_accents_and_stop_words(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let config = log.send(room, alice, "The configuration is ready");
    let png = log.send(room, alice, "see report.png for details");
    let url = log.send(room, alice, "docs at https://www.example.com/start");
    let cafe = log.send(room, alice, "Meet at the Café tomorrow");
    let hamlet = log.send(room, alice, "to be or not to be");
    let straße = log.send(room, alice, "Hauptstraße 5");
    log.commit(ix).await;
    let rooms = [room];
    assert_eq!(find(ix, "configuration", &rooms).await, set(&[config]));
    assert_eq!(
        find(ix, "conf", &rooms).await,
        set(&[config]),
        "a word's start"
    );
    assert_eq!(
        find(ix, "png", &rooms).await,
        set(&[png]),
        "after punctuation"
    );
    assert_eq!(find(ix, "report.png", &rooms).await, set(&[png]));
    assert_eq!(find(ix, "example", &rooms).await, set(&[url]));
    assert_eq!(find(ix, "www.example.com", &rooms).await, set(&[url]));
    assert_eq!(
        find(ix, "cafe", &rooms).await,
        set(&[cafe]),
        "accents folded"
    );
    assert_eq!(find(ix, "CAFÉ", &rooms).await, set(&[cafe]), "case folded");
    assert_eq!(find(ix, "hauptstrasse", &rooms).await, set(&[straße]));
    assert_eq!(
        find(ix, "the", &rooms).await,
        set(&[config, cafe]),
        "stop words stay"
    );
    assert_eq!(
        find(ix, "\"to be or not to be\"", &rooms).await,
        set(&[hamlet])
    );
    assert_eq!(
        find(ix, "configuration ready", &rooms).await,
        set(&[config]),
        "AND"
    );
    assert_eq!(find(ix, "configuration details", &rooms).await, set(&[]));
    assert_eq!(find(ix, "nothing", &rooms).await, set(&[]));
    fx.cleanup().await;
}

async fn phrases_and_prefixes(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let plan = log.send(room, alice, "the plan is simple");
    let planet = log.send(room, alice, "a planet: the plan, simply");
    let deploy = log.send(room, alice, "deployment done");
    log.commit(ix).await;
    let rooms = [room];
    assert_eq!(find(ix, "\"the plan\"", &rooms).await, set(&[plan, planet]));
    assert_eq!(find(ix, "\"plan is\"", &rooms).await, set(&[plan]));
    assert_eq!(
        find(ix, "\"plan the\"", &rooms).await,
        set(&[]),
        "order counts"
    );
    assert_eq!(find(ix, "plan*", &rooms).await, set(&[plan, planet]));
    assert_eq!(find(ix, "deploy*", &rooms).await, set(&[deploy]));
    assert_eq!(find(ix, "deploy", &rooms).await, set(&[deploy]));
    // The whole word ranks above a word it only starts.
    let exact = log.send(room, alice, "deploy tonight");
    log.commit(ix).await;
    let top = page(ix, request("deploy", &rooms)).await;
    let order: Vec<Uuid> = top.hits.iter().map(|h| h.doc.message_id).collect();
    assert_eq!(order, vec![exact, deploy], "{:?}", top.hits);
    fx.cleanup().await;
}

async fn cjk_without_spaces(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let tokyo = log.send(room, alice, "東京タワーに行きました");
    let meeting = log.send(room, alice, "明天的会议取消了");
    let korean = log.send(room, alice, "회의가 취소되었습니다");
    let mixed = log.send(room, alice, "release 東京 build");
    log.commit(ix).await;
    let rooms = [room];
    assert_eq!(find(ix, "東京", &rooms).await, set(&[tokyo, mixed]));
    assert_eq!(find(ix, "会议", &rooms).await, set(&[meeting]));
    assert_eq!(find(ix, "タワー", &rooms).await, set(&[tokyo]));
    assert_eq!(find(ix, "京東", &rooms).await, set(&[]), "order counts");
    assert_eq!(find(ix, "취소", &rooms).await, set(&[korean]));
    assert_eq!(find(ix, "東京 release", &rooms).await, set(&[mixed]));
    fx.cleanup().await;
}

async fn filters_by_room_sender_time_and_link(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (r1, r2, r3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let day = |d: u32| {
        Utc.with_ymd_and_hms(2026, 3, d, 9, 30, 0)
            .single()
            .expect("day")
    };
    let mut log = Log::new();
    let a1 = log.send_at(r1, alice, "status update one", day(1));
    let b1 = log.send_at(r1, bob, "status update two https://x.example", day(2));
    let a2 = log.send_at(r2, alice, "status update three", day(3));
    let hidden = log.send_at(r3, alice, "status update secret", day(3));
    log.commit(ix).await;
    let both = [r1, r2];
    assert_eq!(
        find(ix, "status", &both).await,
        set(&[a1, b1, a2]),
        "only the rooms asked for"
    );
    assert_eq!(
        find(ix, "secret", &both).await,
        set(&[]),
        "another room's message never leaks"
    );
    assert_eq!(find(ix, "status", &[r3]).await, set(&[hidden]));
    assert_eq!(find(ix, "status", &[]).await, set(&[]), "no rooms, no hits");
    let mut by_alice = request("status", &both);
    by_alice.senders = vec![alice];
    assert_eq!(ids(ix, by_alice).await, set(&[a1, a2]));
    let mut on_day_2 = request("status", &both);
    on_day_2.sent_from = Some(day(2) - Duration::hours(9));
    on_day_2.sent_before = Some(day(3) - Duration::hours(9));
    assert_eq!(ids(ix, on_day_2).await, set(&[b1]));
    let mut links = request("", &both);
    links.has_link = true;
    assert_eq!(ids(ix, links).await, set(&[b1]));
    let everything = request("", &both);
    assert_eq!(
        ids(ix, everything).await,
        set(&[a1, b1, a2]),
        "filters alone"
    );
    fx.cleanup().await;
}

async fn edits_reindex_and_deletes_remove(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let m = log.send(room, alice, "original wording");
    let gone = log.send(room, alice, "soon deleted wording");
    let twice = log.send(room, alice, "first draft");
    log.commit(ix).await;
    log.edit(m, "revised text");
    log.delete(gone);
    // Edited twice in one batch, and edited and deleted in one batch.
    log.edit(twice, "second draft");
    log.edit(twice, "third draft");
    let doomed = log.send(room, alice, "doomed wording");
    log.edit(doomed, "doomed edited");
    log.delete(doomed);
    log.commit(ix).await;
    let rooms = [room];
    assert_eq!(
        find(ix, "revised", &rooms).await,
        set(&[m]),
        "found by its new text"
    );
    assert_eq!(
        find(ix, "original", &rooms).await,
        set(&[]),
        "not by its old"
    );
    assert_eq!(
        find(ix, "wording", &rooms).await,
        set(&[]),
        "deleted ones never"
    );
    assert_eq!(find(ix, "third", &rooms).await, set(&[twice]));
    assert_eq!(find(ix, "draft", &rooms).await, set(&[twice]));
    assert_eq!(find(ix, "doomed", &rooms).await, set(&[]));
    let hit = page(ix, request("revised", &rooms)).await.hits.remove(0);
    assert_eq!(hit.doc.body, "revised text");
    assert_eq!(
        hit.doc.sent_position, 1,
        "an edit keeps the message's place"
    );
    assert_eq!(hit.doc.position, 4);
    // An edit of a deleted message changes nothing.
    log.edit(gone, "resurrected wording");
    log.commit(ix).await;
    assert_eq!(find(ix, "resurrected", &rooms).await, set(&[]));
    fx.cleanup().await;
}

async fn replay_after_a_crash_between_write_and_checkpoint(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let keep = log.send(room, alice, "alpha kept");
    log.commit(ix).await;
    let before = log.committed;
    let edited = log.send(room, alice, "beta before");
    let deleted = log.send(room, alice, "gamma deleted");
    log.edit(edited, "beta after");
    log.delete(deleted);
    let replayed: Vec<Change> = log.pending.clone();
    log.commit(ix).await;
    let after = log.committed;
    // The documents are written, the checkpoint is not: the events are delivered again.
    fx.rewind(before).await;
    assert_eq!(ix.checkpoint().await.expect("checkpoint"), before);
    fx.replay(before, replayed.clone(), after, "replay").await;
    // And a replay of only the sends (as if the edit and delete were yet to come) cannot bring
    // back older text either: the index keeps the newest version of each message.
    let sends = Fixture::only(&replayed, |c| matches!(c, Change::Sent(_)));
    fx.replay(before, sends, after, "replay of sends").await;
    let rooms = [room];
    assert_eq!(find(ix, "alpha", &rooms).await, set(&[keep]));
    assert_eq!(
        find(ix, "beta", &rooms).await,
        set(&[edited]),
        "no duplicate"
    );
    assert_eq!(find(ix, "after", &rooms).await, set(&[edited]));
    assert_eq!(find(ix, "before", &rooms).await, set(&[]), "no older text");
    // A tombstone's version keeps the deleted message out.
    assert_eq!(find(ix, "gamma", &rooms).await, set(&[]));
    assert_eq!(ix.checkpoint().await.expect("checkpoint"), after);
    fx.cleanup().await;
}

async fn erasing_a_sender_removes_their_messages(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let a1 = log.send(r1, alice, "alpha secret plans");
    let a2 = log.send(r2, alice, "alpha secret recipes");
    let edited = log.send(r1, alice, "draft wording");
    let gone = log.send(r1, alice, "omega deleted");
    let b1 = log.send(r1, bob, "alpha public notes");
    let b2 = log.send(r2, bob, "beta public notes");
    log.commit(ix).await;
    let rooms = [r1, r2];
    assert_eq!(find(ix, "alpha", &rooms).await, set(&[a1, a2, b1]));
    // One more of hers, applied but not yet searchable (no wait for it) when the erasure comes.
    let unseen = log.send(r1, alice, "secret not yet searchable");
    let before = log.next - 1;
    ix.apply(log.committed, std::mem::take(&mut log.pending), before)
        .await
        .expect("apply");
    log.committed = before;
    // In the erasure's batch, before it: an edit, a delete, and a send of hers; after it, one
    // of Bob's.
    log.edit(edited, "revised wording");
    log.delete(gone);
    let a3 = log.send(r2, alice, "gamma secret sent just before");
    log.erase(alice);
    let erased_at = log.next - 1;
    let b3 = log.send(r1, bob, "gamma public after");
    let batch = log.pending.clone();
    log.commit(ix).await;
    assert_eq!(
        ix.checkpoint().await.expect("checkpoint"),
        log.committed,
        "the checkpoint moved over the erasure"
    );
    assert!(log.committed > erased_at);
    let everyone = |senders: Vec<Uuid>| {
        let mut r = request("", &rooms);
        r.senders = senders;
        r
    };
    let check = |label: &'static str| async move {
        assert_eq!(find(ix, "secret", &rooms).await, set(&[]), "{label}");
        assert_eq!(find(ix, "alpha", &rooms).await, set(&[b1]), "{label}");
        assert_eq!(find(ix, "gamma", &rooms).await, set(&[b3]), "{label}");
        assert_eq!(find(ix, "wording", &rooms).await, set(&[]), "{label}");
        assert_eq!(find(ix, "omega", &rooms).await, set(&[]), "{label}");
        assert_eq!(
            find(ix, "public", &rooms).await,
            set(&[b1, b2, b3]),
            "{label}: the other sender's stay"
        );
        assert_eq!(ids(ix, everyone(vec![alice])).await, set(&[]), "{label}");
        assert_eq!(
            ids(ix, everyone(Vec::new())).await,
            set(&[b1, b2, b3]),
            "{label}"
        );
    };
    check("after the erasure").await;
    let hers = set(&[a1, a2, a3, unseen, edited, gone]);
    assert!(ids(ix, everyone(Vec::new())).await.is_disjoint(&hers));
    // An edit of an erased message does not bring it back.
    log.edit(a1, "alpha resurrected");
    log.commit(ix).await;
    assert_eq!(find(ix, "resurrected", &rooms).await, set(&[]));
    check("after an edit of an erased message").await;
    let after = log.committed;
    // The erasure's batch delivered again after a crash, and then only the sends of both
    // batches (older than the erasure): the tombstones keep every message of hers out.
    fx.replay(before, batch.clone(), after, "replay").await;
    check("after a replay").await;
    let sends = Fixture::only(&batch, |c| matches!(c, Change::Sent(_)));
    fx.replay(before, sends, after, "replay of sends").await;
    check("after a replay of the sends").await;
    assert_eq!(ix.checkpoint().await.expect("checkpoint"), after);
    fx.cleanup().await;
}

async fn expiring_a_room_removes_its_messages_up_to_a_seq(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    // (A message's seq is its send's position here: a room's seqs rise, with gaps.)
    let old = log.send(r1, alice, "alpha oldest");
    let other = log.send(r2, bob, "alpha other room, lower seq");
    let edited = log.send(r1, bob, "draft wording");
    let gone = log.send(r1, alice, "omega deleted");
    log.commit(ix).await;
    log.edit(edited, "alpha revised wording");
    log.delete(gone);
    log.commit(ix).await;
    // One more, applied but not yet searchable (no wait for it) when the expiry comes: the
    // last the expiry covers (`seq == up_to_seq`).
    let unseen = log.send(r1, bob, "alpha not yet searchable");
    let up_to_seq = log.next - 1;
    let before = log.next - 1;
    ix.apply(log.committed, std::mem::take(&mut log.pending), before)
        .await
        .expect("apply");
    log.committed = before;
    // In the expiry's batch, above the expired seqs: a send before the expiry, and one after.
    let kept = log.send(r1, alice, "alpha kept, next seq");
    let other_late = log.send(r2, bob, "alpha other room, later");
    log.expire(r1, up_to_seq);
    let expired_at = log.next - 1;
    let after_expiry = log.send(r1, bob, "alpha sent after the expiry");
    log.commit(ix).await;
    assert_eq!(
        ix.checkpoint().await.expect("checkpoint"),
        log.committed,
        "the checkpoint moved over the expiry"
    );
    assert!(log.committed > expired_at);
    let rooms = [r1, r2];
    let check = |label: &'static str| async move {
        assert_eq!(
            find(ix, "alpha", &rooms).await,
            set(&[kept, after_expiry, other, other_late]),
            "{label}"
        );
        assert_eq!(
            find(ix, "", &[r1]).await,
            set(&[kept, after_expiry]),
            "{label}: the room's higher seqs stay"
        );
        assert_eq!(
            find(ix, "", &[r2]).await,
            set(&[other, other_late]),
            "{label}: another room's messages stay, whatever their seq"
        );
        assert_eq!(find(ix, "oldest", &rooms).await, set(&[]), "{label}");
        assert_eq!(find(ix, "wording", &rooms).await, set(&[]), "{label}");
        assert_eq!(find(ix, "omega", &rooms).await, set(&[]), "{label}");
        assert_eq!(find(ix, "searchable", &rooms).await, set(&[]), "{label}");
    };
    check("after the expiry").await;
    let expired = set(&[old, edited, gone, unseen]);
    assert!(find(ix, "", &rooms).await.is_disjoint(&expired));
    // An edit of an expired message, at a later position, creates no document; one of a
    // message above the expired seqs is indexed as usual.
    log.edit(old, "alpha resurrected");
    log.edit(unseen, "alpha resurrected too");
    log.edit(kept, "alpha kept, still editable");
    log.commit(ix).await;
    assert_eq!(find(ix, "resurrected", &rooms).await, set(&[]));
    assert_eq!(find(ix, "editable", &rooms).await, set(&[kept]));
    check("after an edit of an expired message").await;
    fx.cleanup().await;
}

async fn an_expired_message_stays_expired_through_replays(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
    let alice = Uuid::new_v4();
    let mut log = Log::new();
    let start = log.committed;
    let a1 = log.send(r1, alice, "alpha first");
    let a2 = log.send(r1, alice, "beta second");
    let other = log.send(r2, alice, "alpha other room");
    let up_to_seq = log.next - 1;
    let sent = log.pending.clone();
    log.commit(ix).await;
    let before = log.committed;
    log.edit(a2, "beta second edited");
    let a3 = log.send(r1, alice, "gamma third");
    log.expire(r1, up_to_seq);
    let batch = log.pending.clone();
    log.commit(ix).await;
    let after = log.committed;
    let rooms = [r1, r2];
    let expired = &set(&[a1, a2]);
    let check = |label: &'static str| async move {
        assert!(find(ix, "", &rooms).await.is_disjoint(expired), "{label}");
        assert_eq!(find(ix, "alpha", &rooms).await, set(&[other]), "{label}");
        assert_eq!(find(ix, "beta", &rooms).await, set(&[]), "{label}");
        assert_eq!(find(ix, "gamma", &rooms).await, set(&[a3]), "{label}");
        assert_eq!(find(ix, "", &rooms).await, set(&[other, a3]), "{label}");
    };
    check("after the expiry").await;
    // The expiry's batch delivered again after a crash (at-least-once), then only its sends
    // and edits (older than the expiry), then the first batch's sends: the tombstones keep
    // the expired messages out.
    fx.replay(before, batch.clone(), after, "replay").await;
    check("after a replay").await;
    let older = Fixture::only(&batch, |c| {
        matches!(c, Change::Sent(_) | Change::Edited { .. })
    });
    fx.replay(before, older, after, "replay of sends and edits")
        .await;
    check("after a replay of the sends and edits").await;
    fx.replay(start, sent, after, "replay of the first sends")
        .await;
    check("after a replay of the first sends").await;
    assert_eq!(ix.checkpoint().await.expect("checkpoint"), after);
    fx.cleanup().await;
}

async fn an_expiry_covers_what_its_batch_sent_before_it(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
    let alice = Uuid::new_v4();
    let mut log = Log::new();
    let committed = log.send(r1, alice, "alpha committed");
    log.commit(ix).await;
    // One batch: two sends and an edit in the room, one in another room, the expiry up to
    // the second send, then a send with a higher seq (and its edit).
    let early = log.send(r1, alice, "alpha early in the batch");
    let edited = log.send(r1, alice, "draft in the batch");
    let up_to_seq = log.next - 1;
    log.edit(early, "alpha early, edited in the batch");
    let other = log.send(r2, alice, "alpha other room in the batch");
    log.expire(r1, up_to_seq);
    let late = log.send(r1, alice, "alpha late in the batch");
    log.edit(late, "alpha late, edited after the expiry");
    // An edit of an expired message later in the same batch creates no document.
    log.edit(edited, "alpha resurrected in the batch");
    log.commit(ix).await;
    let rooms = [r1, r2];
    assert_eq!(find(ix, "alpha", &rooms).await, set(&[other, late]));
    assert_eq!(find(ix, "", &[r1]).await, set(&[late]));
    assert_eq!(find(ix, "resurrected", &rooms).await, set(&[]));
    assert_eq!(find(ix, "draft", &rooms).await, set(&[]));
    assert_eq!(
        page(ix, request("late", &rooms)).await.hits[0].doc.body,
        "alpha late, edited after the expiry"
    );
    assert_eq!(
        find(ix, "committed", &rooms).await,
        set(&[]),
        "{committed} expired"
    );
    fx.cleanup().await;
}

async fn checkpoint_gaps_restarts_readers_and_reset(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    assert_eq!(fx.ix().checkpoint().await.expect("checkpoint"), 0);
    let m = log.send(room, alice, "persistent words");
    log.commit(fx.ix()).await;
    let at = log.committed;
    match fx.ix().apply(at + 5, Vec::new(), at + 6).await {
        Err(SearchError::Gap {
            checkpoint,
            expected,
        }) => {
            assert_eq!((checkpoint, expected), (at, at + 5));
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    let fx = fx.reopen();
    assert_eq!(
        fx.ix().checkpoint().await.expect("checkpoint"),
        at,
        "survives a restart"
    );
    // A reader elsewhere sees what the writer committed once it asks for that position.
    let reader = fx.reader();
    log.committed = at;
    let n = log.send(room, alice, "newer words");
    log.commit(fx.ix()).await;
    let seen = reader
        .visible_position(log.committed)
        .await
        .expect("visible");
    assert!(seen >= log.committed);
    assert_eq!(find(reader.as_ref(), "words", &[room]).await, set(&[m, n]));
    assert!(
        reader
            .apply(log.committed, Vec::new(), log.committed + 1)
            .await
            .is_err()
            || matches!(kind, Kind::OpenSearch)
    );
    fx.ix().reset().await.expect("reset");
    assert_eq!(fx.ix().checkpoint().await.expect("checkpoint"), 0);
    fx.ix().visible_position(0).await.expect("visible");
    assert_eq!(find(fx.ix(), "words", &[room]).await, set(&[]));
    fx.cleanup().await;
}

/// Pages through `req` with `limit`, returning every hit in order.
async fn all_pages(
    ix: &dyn SearchBackend,
    mut req: SearchRequest,
    limit: usize,
    between: &mut dyn FnMut(usize) -> Option<Vec<Change>>,
) -> Vec<Uuid> {
    req.limit = limit;
    let mut out = Vec::new();
    for n in 0.. {
        let p = page(ix, req.clone()).await;
        out.extend(p.hits.iter().map(|h| h.doc.message_id));
        let Some(last) = p.hits.last() else { break };
        if !p.more {
            break;
        }
        req.snapshot = Some(p.snapshot);
        req.after = Some(After {
            score: matches!(req.sort, Sort::Relevance).then_some(last.score),
            sent_position: last.doc.sent_position,
        });
        if let Some(changes) = between(n) {
            let from = ix.checkpoint().await.expect("checkpoint");
            let to = changes.iter().map(Change::position).max().expect("changes");
            ix.apply(from, changes, to)
                .await
                .expect("apply between pages");
            ix.visible_position(to).await.expect("visible");
        }
    }
    out
}

async fn pages_never_repeat_or_skip(kind: Kind) {
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let mut expected = Vec::new();
    for i in 0..23 {
        // Equal scores for some (the same text), different ones for others.
        let body = if i % 3 == 0 {
            "needle".to_owned()
        } else {
            format!(
                "needle {} haystack {}",
                "needle ".repeat(i % 4),
                "hay ".repeat(i % 5)
            )
        };
        expected.push(log.send(room, alice, &body));
    }
    log.commit(ix).await;
    let expected: HashSet<Uuid> = expected.into_iter().collect();
    for sort in [Sort::Relevance, Sort::Recent] {
        for limit in [1, 5, 7, 100] {
            let mut req = request("needle", &[room]);
            req.sort = sort;
            let got = all_pages(ix, req, limit, &mut |_| None).await;
            let unique: HashSet<Uuid> = got.iter().copied().collect();
            assert_eq!(got.len(), unique.len(), "{sort:?}/{limit}: a hit repeated");
            assert_eq!(unique, expected, "{sort:?}/{limit}: a hit skipped");
        }
    }
    // New messages arriving between pages stay out of the series begun before them.
    let mut req = request("needle", &[room]);
    req.sort = Sort::Recent;
    let mut next = log.next;
    let got = all_pages(ix, req, 4, &mut |n| {
        (n < 3).then(|| {
            let p = next;
            next += 1;
            vec![Change::Sent(MessageDoc {
                message_id: Uuid::new_v4(),
                room_id: room,
                seq: p,
                sender_id: alice,
                sent_at: Utc::now(),
                body: "needle newcomer".to_owned(),
                sent_position: p,
                position: p,
            })]
        })
    })
    .await;
    let unique: HashSet<Uuid> = got.iter().copied().collect();
    assert_eq!(
        got.len(),
        unique.len(),
        "a hit repeated while messages arrived"
    );
    assert_eq!(unique, expected, "the series is the snapshot's");
    // Recent is newest first.
    let recent = page(ix, {
        let mut r = request("needle", &[room]);
        r.sort = Sort::Recent;
        r
    })
    .await;
    let positions: Vec<i64> = recent.hits.iter().map(|h| h.doc.sent_position).collect();
    let mut sorted = positions.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(positions, sorted);
    fx.cleanup().await;
}

async fn clauses_are_what_the_parser_makes(kind: Kind) {
    // A request built by hand (no parser) behaves the same: the contract is the clauses.
    let Some(fx) = Fixture::new(kind).await else {
        return;
    };
    let ix = fx.ix();
    let (room, alice) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Log::new();
    let m = log.send(room, alice, "Zebra crossing");
    log.commit(ix).await;
    let mut req = request("", &[room]);
    req.clauses = vec![
        Clause::Prefix("zeb".to_owned()),
        Clause::Phrase(vec!["crossing".to_owned()]),
    ];
    assert_eq!(ids(ix, req).await, set(&[m]));
    fx.cleanup().await;
}

macro_rules! contract {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn words_partial_words_case_accents_and_stop_words() {
                super::words_partial_words_case_accents_and_stop_words($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn phrases_and_prefixes() {
                super::phrases_and_prefixes($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cjk_without_spaces() {
                super::cjk_without_spaces($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn filters_by_room_sender_time_and_link() {
                super::filters_by_room_sender_time_and_link($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn edits_reindex_and_deletes_remove() {
                super::edits_reindex_and_deletes_remove($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn replay_after_a_crash_between_write_and_checkpoint() {
                super::replay_after_a_crash_between_write_and_checkpoint($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn erasing_a_sender_removes_their_messages() {
                super::erasing_a_sender_removes_their_messages($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expiring_a_room_removes_its_messages_up_to_a_seq() {
                super::expiring_a_room_removes_its_messages_up_to_a_seq($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_expired_message_stays_expired_through_replays() {
                super::an_expired_message_stays_expired_through_replays($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_expiry_covers_what_its_batch_sent_before_it() {
                super::an_expiry_covers_what_its_batch_sent_before_it($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn checkpoint_gaps_restarts_readers_and_reset() {
                super::checkpoint_gaps_restarts_readers_and_reset($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pages_never_repeat_or_skip() {
                super::pages_never_repeat_or_skip($kind).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn clauses_are_what_the_parser_makes() {
                super::clauses_are_what_the_parser_makes($kind).await;
            }
        }
    };
}

contract!(tantivy, Kind::Tantivy);
contract!(opensearch, Kind::OpenSearch);

#[tokio::test]
async fn tantivy_has_one_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = TantivyIndex::open_writer(dir.path(), WriterSettings::default()).expect("first");
    let second = TantivyIndex::open_writer(dir.path(), WriterSettings::default());
    let err = second.err().expect("a second writer is refused");
    assert!(format!("{err:#}").contains("writer lock"), "{err:#}");
}
