//! Exactly-once in effect under `kill -9`: the projector runs as a separate process and is
//! killed ten times at random moments of a 20,000-event load; afterwards its read models equal
//! a fresh replay of the PostgreSQL log (the oracle reads PostgreSQL, not NATS).
//!
//! The process alternates between the `projector` binary (the read models) and this test
//! binary run again as a child ([`child_runs_the_read_models_and_the_message_counts`]), which
//! runs the same framework with the read models and the tests' own projection
//! ([`common::message_counts`]): that one must end at the same checkpoint, with the counts
//! the log holds.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Harness;
use common::message_counts::MessageCounts;
use http_kit::settings::Layered as _;
use projector::Projection as _;
use rand::{Rng, SeedableRng};

const EVENTS: usize = 20_000;
const KILLS: usize = 10;

/// Set in the environment of this test binary when it runs as the child process.
const CHILD: &str = "PROJECTOR_TEST_CHILD";
const CHILD_TEST: &str = "child_runs_the_read_models_and_the_message_counts";

/// The child process the kill test runs when it re-executes this test binary: the projector's
/// [`Application`](projector::startup::Application) (from
/// [`with_projections`](projector::startup::with_projections)), configured from `APP_*` like
/// the binary, running the registered projections plus [`MessageCounts`] until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of the kill -9 test, which runs it"]
async fn child_runs_the_read_models_and_the_message_counts() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    http_kit::telemetry::init();
    let settings = projector::configuration::Settings::load().expect("settings");
    let (pool, log) = settings.connect_databases().await.expect("databases");
    projector::migrate(&pool).await.expect("migrations");
    let mut projections = projector::registry(
        &pool,
        projector::SearchIndex::from_settings(settings.search.clone()),
    );
    projections.push(Arc::new(MessageCounts::create(&pool).await));
    let app = projector::startup::with_projections(settings, pool, log, projections)
        .await
        .expect("application");
    app.run(std::future::pending()).await.expect("run");
}

/// The `projector` binary (the read models), or this test binary as the child running the
/// read models and the message counts.
fn spawn_projector(h: &Harness, log: &std::path::Path, child: bool) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("projector log file");
    let mut command = if child {
        let mut c = tokio::process::Command::new(std::env::current_exe().expect("test binary"));
        c.args(["--exact", CHILD_TEST, "--ignored", "--nocapture"])
            .env(CHILD, "1");
        c
    } else {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_projector"))
    };
    command
        .env("APP_LISTEN", "127.0.0.1:0")
        .env("APP_DATABASE_URL", &h.db.url)
        .env("APP_NATS_URL", eventlog::testing::nats_url())
        .env("APP_STREAM_NAME", &h.nats.stream_name)
        .env("APP_SUBJECT_PREFIX", &h.nats.prefix)
        .env("APP_DB_MAX_CONNECTIONS", "4")
        .env("APP_DATA_DIR", h.data.path())
        .env("RUST_LOG", "info,sqlx=warn,async_nats=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the projector binary")
}

/// Waits until `cond` holds or the deadline passes.
async fn wait_for<F, Fut>(within: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_equal_a_replay_of_the_log_after_ten_kill_9s_during_a_20000_event_load() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let log_path = std::env::temp_dir().join(format!("projector-kill-{}.log", h.nats.prefix));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b696c6c);
    let started = Instant::now();
    let counts = MessageCounts::create(&h.db.pool).await;
    let counted = || async { counts.checkpoint().await.expect("counts checkpoint") };
    // The search index, as a query API on the host reads it.
    let index_dir = h.data.path().join("search");
    let indexed = || async {
        match search::TantivyIndex::open_reader(&index_dir) {
            Ok(ix) => search::SearchBackend::checkpoint(&ix).await.unwrap_or(0),
            Err(_) => 0,
        }
    };

    // The load: real domain events, appended through group commit by 4 concurrent writers.
    let store = h.store.clone();
    let load = tokio::spawn(async move {
        let (users, rooms) = common::setup_world(&store, 200, 40, 20, 7).await;
        common::random_load(&store, users, rooms, EVENTS, 4, 11).await;
    });

    let mut kills_during_load = 0;
    for kill in 0..KILLS {
        let mut child = spawn_projector(&h, &log_path, kill % 2 == 1);
        let before = h.checkpoint().await;
        // Spread the kills over the load: kill `k` comes once the log holds k/10 of it and the
        // projector has made progress since its start, at a random moment after that.
        let share = i64::try_from(kill * EVENTS / KILLS).expect("share");
        let moved = wait_for(Duration::from_secs(300), || async {
            let (cp, head) = (h.checkpoint().await, h.head().await);
            (cp > before && head >= share) || (load.is_finished() && cp >= head)
        })
        .await;
        assert!(
            moved,
            "kill {kill}: the projector made no progress from {before}"
        );
        let pause = rng.random_range(0..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if !load.is_finished() {
            kills_during_load += 1;
        }
        child.start_kill().expect("SIGKILL");
        let status = child.wait().await.expect("wait for the killed projector");
        assert!(!status.success(), "the projector was not killed: {status}");
        eprintln!(
            "kill {kill}: checkpoint {} (message counts {}) head {} after {:?}",
            h.checkpoint().await,
            counted().await,
            h.head().await,
            started.elapsed()
        );
    }
    load.await.expect("load");
    let head = h.head().await;
    assert!(
        head >= EVENTS as i64,
        "the load appended only {head} events"
    );

    // Once more, to the end, with both projections.
    let mut child = spawn_projector(&h, &log_path, true);
    let done = wait_for(Duration::from_secs(180), || async {
        h.checkpoint().await == head && counted().await == head && indexed().await == head
    })
    .await;
    child.start_kill().expect("stop the projector");
    let _ = child.wait().await;
    assert!(
        done,
        "the projector did not reach the head {head} (checkpoints {}, {} and {}); see {}",
        h.checkpoint().await,
        counted().await,
        indexed().await,
        log_path.display()
    );
    eprintln!(
        "{KILLS} kills ({kills_during_load} while the load was running), {head} events, \
         checkpoint {} after {:?}",
        h.checkpoint().await,
        started.elapsed()
    );
    assert_eq!(h.checkpoint().await, head);
    assert_eq!(counted().await, h.checkpoint().await, "the same checkpoint");
    assert!(h.dead_letters().await.is_empty(), "no event is poison");
    let expected = MessageCounts::expected(&h.db.pool).await;
    assert!(
        expected.values().sum::<i64>() > 1000,
        "the load sends messages"
    );
    assert_eq!(counts.counts().await, expected, "messages per room");

    let (oracle, n, took) = common::oracle(&h.db.pool).await;
    assert_eq!(n, u64::try_from(head).expect("head"));
    eprintln!(
        "oracle catch_up_from_log: {n} events in {took:?} ({:.0} events/s)",
        n as f64 / took.as_secs_f64()
    );
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;
    let index = search::TantivyIndex::open_reader(&index_dir).expect("the search index");
    common::assert_search_holds_the_read_models_messages(&h.db.pool, &index).await;

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
    let _ = std::fs::remove_file(&log_path);
}
