//! The scenarios (R1–R9), each on a cluster of its own, and what they share: start a
//! cluster and a load, inject faults, then stop the load and let the oracle judge.

pub mod kills;
pub mod nats;
pub mod partitions;
pub mod poison;
pub mod postgres;
pub mod slow;
pub mod soak;
pub mod stop;

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::{Cluster, Shape};
use crate::live::{Login, Watcher};
use crate::load::{self, Api, Load, Plan, World};
use crate::oracle;
use crate::report::{Report, secs, statuses};

/// How long the read models and the stream may take to hold every event once the faults
/// are over and the load has stopped.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(120);

/// The short tier (CI) or the full tier (the figures of RELIABILITY.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Short,
    Full,
}

impl Tier {
    pub fn pick<T>(self, short: T, full: T) -> T {
        match self {
            Tier::Short => short,
            Tier::Full => full,
        }
    }
}

/// Every scenario, by name, in the order `chaos` runs them.
pub const ALL: &[&str] = &[
    "r1-projector-kill",
    "r2-relay-kill",
    "r3-nats-kill",
    "r4-postgres",
    "r5-partitions",
    "r6-projector-stop",
    "r7-poison",
    "r8-slow-sockets",
    "r9-soak",
];

/// Runs the scenario `name`.
pub async fn run(name: &str, tier: Tier, seed: u64) -> anyhow::Result<Report> {
    match name {
        "r1-projector-kill" => kills::projector(tier, seed).await,
        "r2-relay-kill" => kills::relay(tier, seed).await,
        "r3-nats-kill" => nats::kill_and_delete(tier, seed).await,
        "r4-postgres" => postgres::restarts_and_outages(tier, seed).await,
        "r5-partitions" => partitions::postgres_and_nats(tier, seed).await,
        "r6-projector-stop" => stop::one_of_two_projectors(tier, seed).await,
        "r7-poison" => poison::poison_events(tier, seed).await,
        "r8-slow-sockets" => slow::sockets_that_never_read(tier, seed).await,
        "r9-soak" => soak::soak(tier, seed).await,
        other => anyhow::bail!("no scenario {other}; the scenarios are {}", ALL.join(", ")),
    }
}

/// A scenario in progress: its cluster, its world and its running load.
pub struct Run {
    pub cluster: Cluster,
    pub api: Api,
    pub world: World,
    pub load: Load,
    pub report: Report,
    started: Instant,
}

impl Run {
    /// Starts a cluster of `shape`, sets up `users` users in `rooms` rooms and starts the
    /// load.
    pub async fn start(
        name: &str,
        promise: &str,
        shape: &Shape,
        users: usize,
        rooms: usize,
        plan: Plan,
    ) -> anyhow::Result<Run> {
        let started = Instant::now();
        let cluster = Cluster::start(shape).await.context("start the cluster")?;
        let api = Api {
            http: cluster.http.clone(),
            command: cluster.command.base(),
            query: cluster.query.base(),
        };
        let setup = load::Shared::default();
        let world = load::setup(&api, &setup, users, rooms)
            .await
            .context("set up users and rooms")?;
        let load = Load::start(api.clone(), world.clone(), plan);
        Ok(Run {
            cluster,
            api,
            world,
            load,
            report: Report::new(name, promise),
            started,
        })
    }

    /// Waits until the log's head reaches `position` (the load keeps appending).
    pub async fn head_reaches(&self, position: i64, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while self.cluster.head().await? < position {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the log did not reach {position} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Waits until the read models and the stream hold every event up to `position`;
    /// returns how long that took.
    pub async fn caught_up(&self, position: i64, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let stream = i64::try_from(self.cluster.stream_last().await.unwrap_or(0))?;
            let checkpoint = self.cluster.checkpoint().await.unwrap_or(0);
            if stream >= position && checkpoint >= position {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                anyhow::bail!(
                    "not caught up with position {position} within {within:?}: stream \
                     {stream}, read models {checkpoint}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How soon after `t` the live feed delivered again: the first message sent at or
    /// after `t` that `watcher` saw, and when (bounded by `within`).
    pub async fn live_again(
        &self,
        watcher: &Watcher,
        t: Instant,
        within: Duration,
    ) -> anyhow::Result<Duration> {
        loop {
            let seen = self.load.shared.ledger.lock().ok().and_then(|l| {
                l.sent
                    .iter()
                    .filter(|s| s.at >= t)
                    .filter_map(|s| watcher.seen(&s.client_msg_id))
                    .min()
            });
            if let Some(at) = seen {
                return Ok(at.saturating_duration_since(t));
            }
            if t.elapsed() > within {
                anyhow::bail!(
                    "the live feed delivered nothing sent after the fault within {within:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A live client subscribed to every room (as the second user).
    pub fn watcher(&self) -> Watcher {
        Watcher::start(
            self.cluster.query_addr(),
            Login {
                http: self.api.http.clone(),
                command: self.api.command.clone(),
                username: self.world.users[1].username.clone(),
            },
            self.world.rooms.clone(),
        )
    }

    /// Waits until a read of the query API answers 200; returns how long that took.
    pub async fn reads_again(&self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let token = &self.world.users[0].token;
        loop {
            let ok = self
                .api
                .http
                .get(format!("{}/v1/rooms", self.api.query))
                .bearer_auth(token)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                anyhow::bail!("the query API did not answer a read within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the load, waits for convergence and lets the oracle judge: nothing lost,
    /// duplicated or different, no 5xx but a 503 with `Retry-After`, no panic, and
    /// exactly `dead_letters` dead letters.
    pub async fn finish(self, dead_letters: i64) -> anyhow::Result<Report> {
        let Run {
            cluster,
            load,
            mut report,
            started,
            ..
        } = self;
        let load_started = load.started;
        let stopped = load.stop().await;
        let r = &mut report;
        let shared = match stopped {
            Ok(s) => s,
            Err(e) => {
                r.failures.push(format!("the load failed: {e:#}"));
                r.took = started.elapsed();
                return Ok(keep_logs(cluster, report));
            }
        };
        match cluster.converge(CONVERGE_WITHIN).await {
            Ok(t) => r.figure("converged after the load stopped", secs(t)),
            Err(e) => r.failures.push(format!("{e:#}")),
        }
        let ledger = std::mem::take(&mut *shared.ledger.lock().map_err(|_| poisoned())?);
        let v = oracle::judge(&cluster, &ledger).await?;
        r.figure("events in the log", v.events);
        r.figure(
            "commands acknowledged",
            format!(
                "{} messages, {} edits, {} reactions, {} read markers",
                v.acknowledged,
                ledger.edits.len(),
                ledger.reactions.len(),
                ledger.read_markers
            ),
        );
        r.figure(
            "lost / duplicated / seq gaps",
            format!("{} / {} / {}", v.lost, v.duplicated, v.seq_gaps),
        );
        r.figure(
            "read-model rows differing from the oracle",
            format!(
                "{} of {} (replay {})",
                v.rows_differing,
                v.read_model_rows,
                secs(v.replay)
            ),
        );
        r.figure("stream positions wrong", v.stream_wrong);
        r.figure("dead letters", v.dead_letters);
        r.expect(v.clean(), || {
            format!("the oracle found differences: {}", v.examples.join("; "))
        });
        r.expect(v.acknowledged > 0, || "nothing was acknowledged".into());
        r.expect(v.dead_letters == dead_letters, || {
            format!("{} dead letters, expected {dead_letters}", v.dead_letters)
        });
        let outcomes = load::outcomes(&shared, load_started, Instant::now());
        r.figure(
            "answers by status (0 = failed in transit)",
            statuses(&outcomes),
        );
        let server_errors: u64 = outcomes
            .iter()
            .filter(|(s, _)| **s >= 500 && **s != 503)
            .map(|(_, n)| n)
            .sum();
        r.expect(server_errors == 0, || {
            format!("{server_errors} answers 5xx other than 503")
        });
        let bare_503 = shared
            .attempts
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .filter(|a| a.status == 503 && !a.retry_after)
            .count();
        r.expect(bare_503 == 0, || {
            format!("{bare_503} × 503 without Retry-After")
        });
        let unexpected = shared.unexpected.lock().map_err(|_| poisoned())?.clone();
        r.expect(unexpected.is_empty(), || {
            format!(
                "{} unexpected answers, e.g. {}",
                unexpected.len(),
                unexpected
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        let panics = cluster.panics();
        r.figure("panics", panics);
        r.expect(panics == 0, || {
            format!("{panics} panics in the roles' logs")
        });
        r.took = started.elapsed();
        Ok(keep_logs(cluster, report))
    }
}

/// Keeps the cluster's logs when the scenario failed (and says where).
fn keep_logs(cluster: Cluster, mut report: Report) -> Report {
    if report.passed() && std::env::var_os("CHAOS_KEEP_LOGS").is_none() {
        cluster.passed();
    } else {
        report.figure("logs kept in", cluster.logs().display());
    }
    report
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("a writer panicked holding the ledger")
}
