//! R5: the network between the platform and PostgreSQL, then NATS, partitioned under load
//! by the harness's own proxy ([`crate::proxy`]): once healed with the held bytes let
//! through (a short partition TCP survives), once with every connection reset (a long
//! one). The promises of R3 and R4: no 500 while partitioned, every acknowledged command
//! exactly once, the roles serving again and the read models and live feed converging
//! after the heal without a restart.

use std::time::{Duration, Instant};

use super::{Run, Tier};
use crate::cluster::Shape;
use crate::load::{Plan, outcomes};
use crate::proxy::Proxy;
use crate::report::{Report, secs, statuses};

/// How soon after a heal the roles must serve again and the read models and a live client
/// have converged.
const CONVERGE: Duration = Duration::from_secs(5);

pub async fn postgres_and_nats(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    let rounds = tier.pick(1, 3);
    let cut = tier.pick(Duration::from_secs(4), Duration::from_secs(20));
    let plan = Plan::steady(seed);
    let shape = Shape {
        pg_proxy: true,
        nats_proxy: true,
        ..Shape::default()
    };
    let mut run = Run::start(
        "R5 network partitions",
        "no 500 while partitioned; every ledger command exactly once; after the heal the \
         roles serve and the read models and live feeds converge within 5 s, no restart",
        &shape,
        6,
        4,
        plan,
    )
    .await?;
    let watcher = run.watcher();
    let mut lines = Vec::new();
    let mut slow = Vec::new();
    for _ in 0..rounds {
        for (link, reset) in [
            ("PostgreSQL", false),
            ("PostgreSQL", true),
            ("NATS", false),
            ("NATS", true),
        ] {
            run.load.wait_for_more(50, Duration::from_secs(120)).await?;
            let proxy: &Proxy = match link {
                "PostgreSQL" => run.cluster.pg_proxy.as_ref(),
                _ => run.cluster.nats_proxy.as_ref(),
            }
            .ok_or_else(|| anyhow::anyhow!("no proxy"))?;
            let ended = watcher.ends().len();
            let at = Instant::now();
            proxy.partition();
            tokio::time::sleep(cut).await;
            let head = run.cluster.head().await?;
            proxy.heal(reset);
            let healed = Instant::now();
            let healed_utc = chrono::Utc::now().format("%H:%M:%S%.3f");
            let during = outcomes(&run.load.shared, at, healed);
            let read = run.reads_again(Duration::from_secs(60)).await?;
            let caught = run.caught_up(head, Duration::from_secs(60)).await?;
            let live = run
                .live_again(&watcher, healed, Duration::from_secs(60))
                .await?;
            run.load.wait_for_more(1, Duration::from_secs(60)).await?;
            let send = run
                .load
                .first_success_after(healed)
                .unwrap_or(Duration::MAX);
            let ends = watcher.ends().split_off(ended);
            let kind = if reset {
                "connections reset"
            } else {
                "bytes held"
            };
            lines.push(format!(
                "{link} cut {} s, {kind}, healed at {healed_utc}: while cut {}; after the heal: \
                 send {}, read {}, caught up {}, live {}; the live client's sockets that \
                 ended: {}",
                cut.as_secs(),
                statuses(&during),
                secs(send),
                secs(read),
                secs(caught),
                secs(live),
                if ends.is_empty() {
                    "none".to_owned()
                } else {
                    ends.join(", ")
                }
            ));
            if during.contains_key(&500) {
                slow.push(format!("{link} ({kind}): a 500 while partitioned"));
            }
            if [send, read, caught, live].iter().any(|d| *d > CONVERGE) {
                slow.push(format!(
                    "{link} ({kind}): send {send:?}, read {read:?}, caught up {caught:?}, \
                     live {live:?} after the heal (> 5 s)"
                ));
            }
        }
    }
    let r = &mut run.report;
    for (i, l) in lines.iter().enumerate() {
        r.figure(&format!("partition {}", i + 1), l);
    }
    r.failures.extend(slow);
    run.finish(0).await
}
