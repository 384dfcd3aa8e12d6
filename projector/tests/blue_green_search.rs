//! Blue/green rebuilds of the search projection ([`projector::SearchIndex`]'s `stage`), on
//! both backends, through the framework: while the live runner keeps applying a mixed
//! workload from JetStream and a reader (the query API's handle) keeps searching, a rebuild
//! from a handle of its own (as `projector rebuild search` in another process) replays the
//! log into a fresh index and switches. Searches never fail, the live runner follows the
//! switch (filling from the log whatever the new index lacks) and both end holding exactly
//! the read models' messages. An interrupted rebuild first leaves the live index untouched.
//!
//! OpenSearch: the node at `APP_OPENSEARCH_URL` (default http://127.0.0.1:9200), an index
//! prefix per test; "OpenSearch: not run" with `CHAT_OPENSEARCH=skip` and no node.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Harness;
use eventlog::EventStore as _;
use projector::projection::{Batch, Projection as _, Replay};
use projector::{Outcome, SearchIndex};
use search::{BackendKind, SearchBackend, SearchError, SearchRequest, SearchSettings, Sort};
use uuid::Uuid;

fn settings(h: &Harness, kind: BackendKind) -> SearchSettings {
    SearchSettings {
        search_backend: kind,
        data_dir: h.data.path().to_path_buf(),
        opensearch_url: std::env::var("APP_OPENSEARCH_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:9200".to_owned()),
        opensearch_index_prefix: format!("bluegreen-{}", Uuid::new_v4().simple()),
        opensearch_replicas: 0,
        search_writer_heap_mib: 64,
    }
}

/// `false`: OpenSearch is not reachable and `CHAT_OPENSEARCH=skip`.
async fn reachable(settings: &SearchSettings) -> bool {
    if settings.search_backend != BackendKind::OpenSearch {
        return true;
    }
    let ix =
        search::OpenSearchIndex::new(&settings.opensearch_url, &settings.opensearch_index_prefix)
            .expect("client");
    match ix.ensure().await {
        Ok(()) => true,
        Err(SearchError::Unavailable(e))
            if std::env::var("CHAT_OPENSEARCH").as_deref() == Ok("skip") =>
        {
            eprintln!("OpenSearch: not run (CHAT_OPENSEARCH=skip; {e})");
            false
        }
        Err(e) => panic!(
            "OpenSearch at {} is needed: bash scripts/opensearch.sh (or CHAT_OPENSEARCH=skip): {e}",
            settings.opensearch_url
        ),
    }
}

/// Every message of `rooms` containing `word`, newest first.
fn request(q: &str, rooms: &[Uuid]) -> SearchRequest {
    SearchRequest {
        clauses: search::query::parse(q).expect("q").clauses,
        rooms: rooms.to_vec(),
        senders: Vec::new(),
        sent_from: None,
        sent_before: None,
        has_link: false,
        sort: Sort::Recent,
        limit: 50,
        snapshot: None,
        after: None,
    }
}

async fn rebuild_under_live_traffic(kind: BackendKind) {
    let h = Harness::new().await;
    let settings = settings(&h, kind);
    if !reachable(&settings).await {
        return;
    }
    let (stop_relay, relay) = h.spawn_relay();
    let (users, rooms) = common::setup_world(&h.store, 40, 8, 4, 41).await;
    let rooms = common::random_load(&h.store, users.clone(), rooms, 3_000, 2, 42).await;
    let room_ids: Vec<Uuid> = rooms.iter().map(|r| r.id.0).collect();
    let pool = h.db.pool.clone();

    // The live search projection (the platform's) and a reader (a query API's).
    let live_backend = settings.open_writer().expect("the live index");
    let live = SearchIndex::new(live_backend.clone());
    let mut runner = h.runner(Arc::new(live.clone()));
    h.drive_to_head(&mut runner, Duration::from_secs(120)).await;
    let reader: Arc<dyn SearchBackend> = settings.open_reader().expect("a reader");
    assert_eq!(live.epoch().await.expect("epoch"), 1);

    // An interrupted rebuild first: staged, 500 events applied, then dropped.
    let rebuilder = SearchIndex::from_settings(settings.clone());
    let checkpoint = live.checkpoint().await.expect("checkpoint");
    // (What the reader sees once it has the live writer's last commit.)
    reader.visible_position(checkpoint).await.expect("visible");
    let before = reader
        .search(request("message", &room_ids))
        .await
        .expect("search");
    {
        let staged = rebuilder.stage().await.expect("stage");
        let events = eventlog::PgEventStore::reader(pool.clone())
            .read_all(0, 500)
            .await
            .expect("read the log");
        let applied = staged
            .copy()
            .apply_batch(Batch {
                events: &events,
                dead_lettered: &[],
            })
            .await
            .expect("apply to the copy");
        assert_eq!(applied.checkpoint, 500);
    }
    assert_eq!(live.epoch().await.expect("epoch"), 1, "no switch");
    assert_eq!(live.checkpoint().await.expect("checkpoint"), checkpoint);
    assert_eq!(
        reader
            .search(request("message", &room_ids))
            .await
            .expect("search"),
        before,
        "the live index untouched"
    );

    // Live traffic: more of the mixed workload, applied by the runner, searched by the reader.
    let stop = Arc::new(AtomicBool::new(false));
    let (searches, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let store = h.store.clone();
    let load = tokio::spawn(async move {
        common::random_load(&store, users, rooms, 9_000, 2, 43).await;
    });
    let applying = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                match runner.process_next().await {
                    Ok(Outcome::Applied(_) | Outcome::Idle) => {}
                    // The runner's own retry (a consumer re-created, a write that met the
                    // switch): reported, then the next delivery.
                    Err(e) => eprintln!("process_next: {e:#}"),
                }
            }
            runner
        })
    };
    let reading = {
        let (stop, searches, errors) = (stop.clone(), searches.clone(), errors.clone());
        let (reader, room_ids) = (reader.clone(), room_ids.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Acquire) {
                for q in ["message", "edited", "mess*", ""] {
                    match reader.search(request(q, &room_ids)).await {
                        Ok(_) => searches.fetch_add(1, Ordering::AcqRel),
                        Err(e) => {
                            eprintln!("search failed: {e}");
                            errors.fetch_add(1, Ordering::AcqRel)
                        }
                    };
                }
            }
        })
    };

    // The rebuild: the framework's steps (stage, bulk replay, bulk_loaded, switch).
    let started = Instant::now();
    let staged = rebuilder.stage().await.expect("stage again");
    let bulk = projector::framework::catch_up_from_log(staged.copy(), &pool, &pool, 10_000)
        .await
        .expect("bulk replay");
    staged.bulk_loaded().await.expect("bulk loaded");
    let replay = Replay {
        pool: pool.clone(),
        log: pool.clone(),
        batch: 1_000,
    };
    let switched = staged.switch(&replay).await.expect("switch");
    eprintln!(
        "{kind:?}: rebuilt {bulk} events in bulk, switched at {} in {:?}",
        switched.checkpoint,
        started.elapsed()
    );
    assert_eq!(switched.epoch, 2);
    assert!(
        !load.is_finished(),
        "the switch came while the load was still running (make the load longer)"
    );

    load.await.expect("load");
    stop.store(true, Ordering::Release);
    let mut runner = applying.await.expect("runner");
    reading.await.expect("reader");
    h.drive_to_head(&mut runner, Duration::from_secs(120)).await;
    let head = h.head().await;
    assert_eq!(live.checkpoint().await.expect("checkpoint"), head);
    assert_eq!(
        live.epoch().await.expect("epoch"),
        2,
        "the live writer followed"
    );
    assert_eq!(
        reader.epoch().await.expect("epoch"),
        2,
        "the reader followed"
    );
    assert_eq!(errors.load(Ordering::Acquire), 0, "searches failed");
    assert!(searches.load(Ordering::Acquire) > 0);

    // Nothing lost, duplicated or stale, as the read models (replayed from the log) say.
    projector::catch_up_from_log(&pool, &pool)
        .await
        .expect("read models");
    assert!(reader.visible_position(head).await.expect("visible") >= head);
    common::assert_search_holds_the_read_models_messages(&pool, reader.as_ref()).await;
    common::assert_search_holds_the_read_models_messages(&pool, live_backend.as_ref()).await;
    if kind == BackendKind::Tantivy {
        let root = settings.index_dir();
        assert_eq!(
            search::generations::generations(&root).expect("generations"),
            vec![2],
            "the old generation and the interrupted rebuild's are gone"
        );
    } else {
        search::OpenSearchIndex::new(&settings.opensearch_url, &settings.opensearch_index_prefix)
            .expect("client")
            .delete_all()
            .await
            .expect("delete the test's indexes");
    }
    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tantivy_rebuild_under_live_traffic_switches_without_a_failed_search_or_a_lost_event() {
    rebuild_under_live_traffic(BackendKind::Tantivy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_rebuild_under_live_traffic_switches_without_a_failed_search_or_a_lost_event() {
    rebuild_under_live_traffic(BackendKind::OpenSearch).await;
}
