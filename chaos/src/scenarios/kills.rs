//! R1 and R2: `kill -9` of the projector, and of the relay, spread over a load; each is
//! started again at once, as a supervisor would.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::{Run, Tier};
use crate::cluster::Shape;
use crate::load::Plan;
use crate::process::Proc;
use crate::report::{Report, joined, list, secs};

/// Which role the kills hit.
#[derive(Clone, Copy)]
enum Target {
    Projector,
    Relay,
}

pub async fn projector(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    kill_repeatedly(
        "R1 kill -9 the projector",
        "read models equal the oracle replayed from the log; 0 double applies",
        Target::Projector,
        tier,
        seed,
    )
    .await
}

pub async fn relay(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    kill_repeatedly(
        "R2 kill -9 the relay",
        "the stream holds every event exactly once, in order",
        Target::Relay,
        tier,
        seed,
    )
    .await
}

async fn kill_repeatedly(
    name: &str,
    promise: &str,
    target: Target,
    tier: Tier,
    seed: u64,
) -> anyhow::Result<Report> {
    let kills: i64 = tier.pick(3, 20);
    let events: i64 = tier.pick(3_000, 100_000);
    let plan = Plan {
        writers: tier.pick(6, 12),
        pace: Duration::ZERO,
        seed,
        pad: 0,
    };
    let mut run = Run::start(name, promise, &Shape::default(), 8, 6, plan).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut back = Vec::new();
    let mut pids = Vec::new();
    let load_started = Instant::now();
    for k in 1..=kills {
        // Kill k once the log holds k/(kills+1) of the events, a random moment later.
        let share = k * events / (kills + 1);
        run.head_reaches(share, Duration::from_secs(600)).await?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        let http = run.cluster.http.clone();
        let proc: &mut Proc = match target {
            Target::Projector => &mut run.cluster.projectors[0],
            Target::Relay => &mut run.cluster.relay,
        };
        pids.push(proc.kill9().await?);
        proc.start()?;
        back.push(proc.wait_ready(&http).await?);
    }
    run.head_reaches(events, Duration::from_secs(600)).await?;
    let r = &mut run.report;
    r.figure(
        "kills",
        format!(
            "{kills} × SIGKILL to {} (pids {})",
            match target {
                Target::Projector => "projector-1",
                Target::Relay => "the relay",
            },
            joined(&pids)
        ),
    );
    r.figure("ready again after each restart", list(&back));
    r.figure("load", secs(load_started.elapsed()));
    run.finish(0).await
}
