//! SIGTERM to the `projector` binary in the middle of a catch-up (#19 graceful shutdown):
//! it stops pulling, lets the batch in flight commit, acknowledges nothing it did not
//! commit, and exits cleanly within a bounded time. Started again, it goes on from its
//! checkpoint, and its read models equal a replay of the log.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Harness;

const EVENTS: usize = 5_000;
/// The bound on the exit: the batch in flight, then the runners' stop.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

fn spawn_projector(h: &Harness) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_projector"))
        .env("APP_LISTEN", "127.0.0.1:0")
        .env("APP_DATABASE_URL", &h.db.url)
        .env("APP_NATS_URL", eventlog::testing::nats_url())
        .env("APP_STREAM_NAME", &h.nats.stream_name)
        .env("APP_SUBJECT_PREFIX", &h.nats.prefix)
        .env("APP_DB_MAX_CONNECTIONS", "4")
        .env("APP_DATA_DIR", h.data.path())
        // Small batches: the signal comes between many commits.
        .env("APP_BATCH", "50")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the projector binary")
}

/// Polls `cond` every `every` until it holds; panics with `what` after `within`.
async fn wait_until<F, Fut>(within: Duration, every: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} (waited {within:?})"
        );
        tokio::time::sleep(every).await;
    }
}

async fn sigterm(mut child: tokio::process::Child) {
    let pid = child.id().expect("running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(EXIT_WITHIN, child.wait())
        .await
        .expect("the projector did not exit in time")
        .expect("wait");
    assert!(status.success(), "the projector exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_catch_up_exits_cleanly_and_loses_nothing() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let (users, rooms) = common::setup_world(&h.store, 50, 10, 10, 7).await;
    common::random_load(&h.store, users, rooms, EVENTS, 4, 11).await;
    let head = h.head().await;

    let child = spawn_projector(&h);
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(5),
        "the projector to make progress",
        || async { h.checkpoint().await > 0 },
    )
    .await;
    sigterm(child).await;
    let stopped_at = h.checkpoint().await;

    let child = spawn_projector(&h);
    wait_until(
        Duration::from_secs(120),
        Duration::from_millis(20),
        "the projector to reach the head again",
        || async { h.checkpoint().await == head },
    )
    .await;
    sigterm(child).await;
    eprintln!("SIGTERM at checkpoint {stopped_at} of {head}; then caught up to {head}");

    assert!(h.dead_letters().await.is_empty(), "no event is poison");
    let (oracle, n, _) = common::oracle(&h.db.pool).await;
    assert_eq!(n, u64::try_from(head).expect("head"));
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}
