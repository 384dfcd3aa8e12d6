//! The projector's catch-up rate over 20,000 events, from the log and from JetStream
//! (figures for BENCHMARKS.md; printed with `--nocapture`). A benchmark, not a check
//! of speed: it is ignored in the regular suite (it takes minutes in a debug build)
//! and run in release by BENCHMARKS.md's command:
//! `cargo test --release -p projector --test catch_up_rate -- --ignored --nocapture`.
//! Its one assertion (both paths build the same read models) is also covered by
//! `exactly_once.rs` and `rebuild.rs`.

mod common;

use std::time::{Duration, Instant};

use common::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run in release, see the module docs and BENCHMARKS.md"]
async fn catching_up_on_20000_events_from_the_log_and_from_jetstream_is_measured() {
    let h = Harness::new().await;
    let (users, rooms) = common::setup_world(&h.store, 200, 40, 20, 21).await;
    common::random_load(&h.store, users, rooms, 20_000, 4, 22).await;
    let head = h.head().await;
    let mut relay = h.relay();
    while relay.publish_pending().await.expect("publish") > 0 {}

    // From the log (the rebuild and oracle path), into a second database.
    let (oracle, n, took) = common::oracle(&h.db.pool).await;
    assert_eq!(n, u64::try_from(head).expect("head"));
    eprintln!(
        "projector catch-up from the PostgreSQL log: {n} events in {:.2} s = {:.0} events/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    // From JetStream (the live path), batches of 500.
    let mut p = h.projector();
    let started = Instant::now();
    h.drive_to_head(&mut p, Duration::from_secs(300)).await;
    let took = started.elapsed();
    eprintln!(
        "projector catch-up from JetStream: {head} events in {:.2} s = {:.0} events/s",
        took.as_secs_f64(),
        head as f64 / took.as_secs_f64()
    );
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;
    h.nats.cleanup().await;
}
