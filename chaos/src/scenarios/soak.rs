//! R9: a soak — the load and a live client for a long while, sampling every role's
//! resident memory and open file descriptors and the PostgreSQL connections. After a
//! warm-up (the first quarter), memory drifts less than 10 % (the last quarter's mean
//! against the mean of the quarter after the warm-up) and descriptors and connections
//! stay flat.

use std::time::{Duration, Instant};

use super::slow::{proc_status, rss_kib};
use super::{Run, Tier};
use crate::cluster::Shape;
use crate::load::Plan;
use crate::report::Report;

/// Growth allowed after the warm-up.
const RSS_DRIFT: f64 = 0.10;
/// Descriptors or connections more than at the end of the warm-up that still count as flat.
const FLAT: i64 = 8;

pub async fn soak(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    let duration = tier.pick(Duration::from_secs(60), Duration::from_secs(1800));
    let every = tier.pick(Duration::from_secs(2), Duration::from_secs(15));
    let plan = Plan::steady(seed);
    let mut run = Run::start(
        "R9 soak",
        "RSS drift < 10 % after warm-up (full tier; the short tier: no doubling); file \
         descriptors and connections flat",
        &Shape::default(),
        6,
        4,
        plan,
    )
    .await?;
    let watcher = run.watcher();
    let names: Vec<String> = run.cluster.roles().map(|p| p.name.clone()).collect();
    let pids: Vec<u32> = run.cluster.roles().map(|p| p.pid().unwrap_or(0)).collect();
    let data = run.cluster.data_dir();
    // Per sample: per role, and the PostgreSQL connections.
    let mut samples: Vec<(Vec<RoleSample>, i64)> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        tokio::time::sleep(every).await;
        let roles = pids.iter().map(|p| RoleSample::of(*p, &data)).collect();
        let conns: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_one(&run.cluster.pool)
        .await?;
        samples.push((roles, conns));
    }
    let warm = samples.len() / 4;
    let (Some(w), Some(last)) = (samples.get(warm), samples.last()) else {
        anyhow::bail!("no samples");
    };
    let (w, last) = (w.clone(), last.clone());
    let acked = run.load.acknowledged();
    let r = &mut run.report;
    r.figure(
        "duration",
        format!(
            "{} s, {} samples, warm-up {} samples; {acked} messages acknowledged",
            duration.as_secs(),
            samples.len(),
            warm
        ),
    );
    for (i, name) in names.iter().enumerate() {
        let (rss0, fd0) = (w.0[i].rss, w.0[i].fds);
        let (rss1, fd1) = (last.0[i].rss, last.0[i].fds);
        // Drift: the mean of the last quarter against the mean of the quarter after the
        // warm-up (a batch's peak is not growth).
        let q = (samples.len() / 4).max(1);
        let (after_warm, tail) = (
            warm..(warm + q).min(samples.len()),
            samples.len().saturating_sub(q)..samples.len(),
        );
        let mean = |range: std::ops::Range<usize>, f: fn(&RoleSample) -> u64| {
            let xs = &samples[range];
            xs.iter().map(|s| f(&s.0[i])).sum::<u64>() as f64 / xs.len().max(1) as f64
        };
        let early = mean(after_warm.clone(), |s| s.rss);
        let late = mean(tail.clone(), |s| s.rss);
        let peak = samples[warm..]
            .iter()
            .map(|s| s.0[i].rss)
            .max()
            .unwrap_or(rss1);
        let drift = (late - early) / early.max(1.0);
        let mib =
            |range: std::ops::Range<usize>, f: fn(&RoleSample) -> u64| mean(range, f) / 1024.0;
        r.figure(
            name,
            format!(
                "RSS {} → {} MiB (peak {} MiB, drift {:+.1} %; anonymous {:.1} → {:.1} MiB, \
                 file-backed {:.1} → {:.1} MiB, quarter means), fds but the index's {fd0} → {fd1}",
                rss0 / 1024,
                rss1 / 1024,
                peak / 1024,
                drift * 100.0,
                mib(after_warm.clone(), |s| s.anon),
                mib(tail.clone(), |s| s.anon),
                mib(after_warm, |s| s.file),
                mib(tail, |s| s.file),
            ),
        );
        // A minute shows a runaway leak but not a 10 % drift: the search index's writer
        // alone swings the projector's RSS by more between commits. The full tier (30
        // minutes) holds every role to the drift; the short tier to no doubling.
        match tier {
            Tier::Full => r.expect(drift < RSS_DRIFT, || {
                format!(
                    "{name}: RSS drifted {:+.1} % after the warm-up",
                    drift * 100.0
                )
            }),
            Tier::Short => r.expect(late < 2.0 * early, || {
                format!("{name}: RSS doubled after the warm-up ({early:.0} → {late:.0} KiB)")
            }),
        }
        r.expect(fd1 - fd0 <= FLAT, || {
            format!("{name}: file descriptors {fd0} → {fd1}")
        });
    }
    r.figure("PostgreSQL connections", format!("{} → {}", w.1, last.1));
    // The live client stayed a client to the end (its token expires and is renewed).
    let last_delivery = watcher.last_seen().map(|t| t.elapsed());
    r.figure(
        "live client",
        format!(
            "{} sockets ended ({:?}); last delivery {last_delivery:?} before the end",
            watcher.ends().len(),
            watcher.ends().iter().rev().take(3).collect::<Vec<_>>()
        ),
    );
    r.expect(
        last_delivery.is_some_and(|d| d < Duration::from_secs(30)),
        || format!("the live client received nothing in the last 30 s ({last_delivery:?})"),
    );
    r.expect(last.1 - w.1 <= FLAT, || {
        format!("PostgreSQL connections {} → {}", w.1, last.1)
    });
    run.finish(0).await
}

/// One role at one moment: its resident set (KiB) in total and in its anonymous and
/// file-backed parts (the search index's mapped segments count in the RSS but are the
/// kernel's to reclaim), and its open descriptors.
#[derive(Clone, Copy)]
struct RoleSample {
    rss: u64,
    anon: u64,
    file: u64,
    fds: i64,
}

impl RoleSample {
    fn of(pid: u32, data: &std::path::Path) -> RoleSample {
        RoleSample {
            rss: rss_kib(pid),
            anon: proc_status(pid, "RssAnon:"),
            file: proc_status(pid, "RssFile:"),
            fds: fds(pid, data),
        }
    }
}

/// Open file descriptors of a process, but for files under `data` (the search index: its
/// segment files come and go with indexing and merges, which is not a leak).
fn fds(pid: u32, data: &std::path::Path) -> i64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| !std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(data)))
            .count() as i64
    })
}
