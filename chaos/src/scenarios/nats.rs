//! R3: `kill -9` of nats-server under load, started again after a while on the same
//! store; R3b: the stream deleted mid-load. Commands keep succeeding (the log is
//! PostgreSQL); the read models and a live client converge within 5 s of NATS returning.

use std::time::{Duration, Instant};

use super::{Run, Tier};
use crate::cluster::Shape;
use crate::load::Plan;
use crate::report::{Report, joined, list};

/// How soon after NATS returns the read models and the live feed must have converged.
const CONVERGE: Duration = Duration::from_secs(5);

pub async fn kill_and_delete(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    let kills = tier.pick(2, 10);
    let down = Duration::from_secs(2);
    let plan = Plan::steady(seed);
    let mut run = Run::start(
        "R3 kill -9 NATS; R3b delete the stream",
        "commands keep succeeding; read models and live feeds converge within 5 s of NATS \
         returning; a deleted stream is re-filled from the log",
        &Shape::default(),
        6,
        4,
        plan,
    )
    .await?;
    let watcher = run.watcher();
    run.load.wait_for_more(100, Duration::from_secs(60)).await?;
    let (mut caught, mut live, mut acked_while_down, mut pids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut returned = Vec::new();
    for _ in 0..kills {
        run.load.wait_for_more(50, Duration::from_secs(60)).await?;
        pids.push(run.cluster.nats.pid().unwrap_or(0));
        run.cluster.nats.kill()?;
        let before = run.load.acknowledged();
        tokio::time::sleep(down).await;
        acked_while_down.push(run.load.acknowledged() - before);
        run.cluster.nats.start().await?;
        let back = Instant::now();
        returned.push(chrono::Utc::now().format("%H:%M:%S%.3f").to_string());
        let head = run.cluster.head().await?;
        caught.push(run.caught_up(head, Duration::from_secs(60)).await?);
        live.push(
            run.live_again(&watcher, back, Duration::from_secs(60))
                .await?,
        );
    }

    // R3b: the stream deleted under load.
    run.load.wait_for_more(50, Duration::from_secs(60)).await?;
    let client = async_nats::connect(run.cluster.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    js.delete_stream(eventlog::RelayConfig::default().stream_name)
        .await?;
    let deleted = Instant::now();
    let head = run.cluster.head().await?;
    let refilled = run.caught_up(head, Duration::from_secs(60)).await?;
    let live_after_delete = run
        .live_again(&watcher, deleted, Duration::from_secs(60))
        .await?;

    let r = &mut run.report;
    r.figure(
        "faults",
        format!(
            "{kills} × SIGKILL to nats-server (pids {}), down {} s each; the stream deleted once",
            joined(&pids),
            down.as_secs()
        ),
    );
    r.figure("NATS back at (UTC)", returned.join(", "));
    r.figure(
        "messages acknowledged while NATS was down",
        joined(&acked_while_down),
    );
    r.figure(
        "stream and read models caught up after NATS returned",
        list(&caught),
    );
    r.figure("a live client received new messages after", list(&live));
    r.figure(
        "after the stream was deleted: re-filled and caught up / live",
        format!("{} / {}", list(&[refilled]), list(&[live_after_delete])),
    );
    r.figure(
        "live client reconnects",
        watcher
            .reconnects
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    r.expect(acked_while_down.iter().all(|n| *n > 0), || {
        "a send was not acknowledged while NATS was down".into()
    });
    for (i, (c, l)) in caught.iter().zip(&live).enumerate() {
        r.expect(*c <= CONVERGE && *l <= CONVERGE, || {
            format!(
                "kill {}: converged after {c:?} / live after {l:?} (> 5 s)",
                i + 1
            )
        });
    }
    r.expect(
        refilled <= CONVERGE && live_after_delete <= CONVERGE,
        || format!("after the stream was deleted: {refilled:?} / {live_after_delete:?} (> 5 s)"),
    );
    run.finish(0).await
}
