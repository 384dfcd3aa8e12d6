//! R4: PostgreSQL restarted (`pg_ctl -m immediate`, started again at once) and down for a
//! while, under load. While it is down every answer is a 503 with `Retry-After` (never a
//! 500); after it returns every role serves again within 2 s without a restart of its own,
//! and every acknowledged command is in the log exactly once.

use std::time::{Duration, Instant};

use super::{Run, Tier};
use crate::cluster::Shape;
use crate::load::{Plan, outcomes};
use crate::report::{Report, list, statuses};

/// How soon after PostgreSQL returns every role must serve again.
const RECOVER: Duration = Duration::from_secs(2);

pub async fn restarts_and_outages(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    let rounds = tier.pick(1, 5);
    let outage = tier.pick(Duration::from_secs(8), Duration::from_secs(20));
    let plan = Plan::steady(seed);
    let mut run = Run::start(
        "R4 PostgreSQL restarts and outages",
        "503 with Retry-After while it is down (0 × 500); every ledger command exactly once; \
         every role serving within 2 s of its return without a restart of its own",
        &Shape::default(),
        6,
        4,
        plan,
    )
    .await?;
    let (mut sends, mut reads, mut projections) = (Vec::new(), Vec::new(), Vec::new());
    let mut while_down = std::collections::BTreeMap::<u16, u64>::new();
    for round in 0..rounds * 2 {
        run.load
            .wait_for_more(100, Duration::from_secs(120))
            .await?;
        let restart = round % 2 == 0;
        let down_at = Instant::now();
        run.cluster.pg.stop_immediate().await?;
        if !restart {
            tokio::time::sleep(outage).await;
        }
        let up_at = Instant::now();
        for (s, n) in outcomes(&run.load.shared, down_at, up_at) {
            *while_down.entry(s).or_default() += n;
        }
        run.cluster.pg.start().await?;
        let back = Instant::now();
        let head = run.cluster.head().await?;
        reads.push(run.reads_again(Duration::from_secs(60)).await?);
        projections.push(run.caught_up(head, Duration::from_secs(60)).await?);
        run.load.wait_for_more(1, Duration::from_secs(60)).await?;
        sends.push(run.load.first_success_after(back).unwrap_or(Duration::MAX));
    }
    let r = &mut run.report;
    r.figure(
        "faults",
        format!(
            "{rounds} × pg_ctl -m immediate and started again at once; {rounds} × down {} s",
            outage.as_secs()
        ),
    );
    r.figure("answers while it was down", statuses(&while_down));
    r.figure(
        "after its return, the first send acknowledged",
        list(&sends),
    );
    r.figure("after its return, the first read answered", list(&reads));
    r.figure(
        "after its return, read models and stream caught up with the log",
        list(&projections),
    );
    r.expect(!while_down.contains_key(&500), || {
        "a 500 while PostgreSQL was down".into()
    });
    for (i, ((s, q), p)) in sends.iter().zip(&reads).zip(&projections).enumerate() {
        r.expect(*s <= RECOVER && *q <= RECOVER && *p <= RECOVER, || {
            format!(
                "round {}: send {s:?}, read {q:?}, read models {p:?} after the return (> 2 s)",
                i + 1
            )
        });
    }
    run.finish(0).await
}
