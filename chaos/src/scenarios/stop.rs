//! R6: one of two projector instances (both consuming the read models' durable consumer)
//! frozen with `SIGSTOP` past JetStream's ack wait — so its unacknowledged batch is
//! redelivered to the other — then thawed with `SIGCONT`. The read models must equal the
//! oracle: no event applied twice.

use std::time::{Duration, Instant};

use super::{Run, Tier};
use crate::cluster::Shape;
use crate::load::Plan;
use crate::report::{Report, joined, list};

pub async fn one_of_two_projectors(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    let rounds = tier.pick(2, 5);
    let ack_wait = Duration::from_secs(2);
    let frozen = ack_wait + Duration::from_secs(3);
    let plan = Plan {
        writers: 6,
        pace: Duration::ZERO,
        seed,
        pad: 0,
    };
    let shape = Shape {
        projectors: 2,
        ack_wait_ms: u64::try_from(ack_wait.as_millis())?,
        ..Shape::default()
    };
    let mut run = Run::start(
        "R6 SIGSTOP one of two projectors",
        "0 double applies: the read models equal the oracle after a frozen instance's batch \
         was redelivered to the other and it was thawed",
        &shape,
        8,
        6,
        plan,
    )
    .await?;
    let (mut moved, mut after) = (Vec::new(), Vec::new());
    let mut pids = Vec::new();
    for _ in 0..rounds {
        run.load
            .wait_for_more(200, Duration::from_secs(120))
            .await?;
        let p = &run.cluster.projectors[0];
        pids.push(p.pid().unwrap_or(0));
        p.signal("STOP")?;
        let before = run.cluster.checkpoint().await?;
        tokio::time::sleep(frozen).await;
        // The other instance kept the read models moving (or did not: a figure).
        moved.push(run.cluster.checkpoint().await? - before);
        run.cluster.projectors[0].signal("CONT")?;
        let thawed = Instant::now();
        let head = run.cluster.head().await?;
        run.caught_up(head, Duration::from_secs(60)).await?;
        after.push(thawed.elapsed());
    }
    let r = &mut run.report;
    r.figure(
        "faults",
        format!(
            "{rounds} × SIGSTOP of projector-1 (pids {}) for {} s (ack wait {} s), then SIGCONT",
            joined(&pids),
            frozen.as_secs(),
            ack_wait.as_secs()
        ),
    );
    r.figure(
        "events the read models advanced while projector-1 was frozen",
        joined(&moved),
    );
    r.figure("caught up with the log after the thaw", list(&after));
    run.finish(0).await
}
