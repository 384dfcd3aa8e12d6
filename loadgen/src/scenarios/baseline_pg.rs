//! `baseline-pg`: the raw PostgreSQL single-row INSERT+COMMIT rate, the
//! ceiling any durable one-event-per-transaction write path works under.
//!
//! Each client holds its own connection and runs one INSERT per transaction
//! (an autocommit statement: one round trip, one commit, one WAL flush when
//! `synchronous_commit=on`) into a scratch table shaped like an event row, in
//! a scratch database that is created for the run and dropped after it.
//!
//! With `--rate R` each level is an open loop instead: commits are scheduled
//! every 1/R s, taken by whichever connection is free, and latency runs from
//! the scheduled time. That is the same-run baseline for a latency target at a
//! fixed rate: what this PostgreSQL and its disk give one-row transactions.

use crate::report::{self, Table, f0};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, Slots, parse_duration};
use anyhow::{Context, anyhow};
use hdrhistogram::Histogram;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct PgArgs {
    /// An existing database to connect to; the scratch database is created beside it.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    /// Concurrent clients (one connection each); a list runs each level in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub clients: Vec<usize>,
    /// Measured time per level.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before each level.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open loop: commits per second in total, on a fixed schedule.
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PgSettings {
    pub server_version: String,
    pub synchronous_commit: String,
    pub fsync: String,
    pub wal_sync_method: String,
    pub commit_delay: String,
    pub full_page_writes: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PgLevel {
    pub clients: usize,
    /// Open loop: the scheduled commits per second.
    pub target_rate_per_s: Option<f64>,
    /// Open loop: the largest delay between a scheduled time and a free connection (ms).
    pub max_lag_ms: Option<f64>,
    pub duration_s: f64,
    pub commits: u64,
    pub commits_per_s: f64,
    pub errors: Errors,
    pub latency: Latency,
    pub distribution: Vec<(f64, f64)>,
    pub cpu: Option<CpuUsage>,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PgReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub settings: PgSettings,
    pub row_bytes_approx: usize,
    pub statement: &'static str,
    pub levels: Vec<PgLevel>,
}

const CREATE_TABLE: &str = "CREATE TABLE loadgen_events (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    data jsonb NOT NULL)";
const INSERT: &str = "INSERT INTO loadgen_events (event_id, event_type, data) VALUES ($1, $2, $3)";

pub async fn run(args: &PgArgs, out: &Path) -> anyhow::Result<PgReport> {
    let r = measure(args).await?;
    emit(&r, out)?;
    Ok(r)
}

pub async fn measure(args: &PgArgs) -> anyhow::Result<PgReport> {
    if args.clients.is_empty() || args.clients.contains(&0) {
        return Err(anyhow!("--clients needs positive numbers"));
    }
    if args.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
        return Err(anyhow!("--rate needs a positive number"));
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    let admin_opts = PgConnectOptions::from_str(&args.database_url)
        .with_context(|| "bad --database-url".to_owned())?;
    let mut admin = PgConnection::connect_with(&admin_opts)
        .await
        .with_context(|| "connecting to PostgreSQL".to_owned())?;
    let settings = settings(&mut admin).await?;
    let scratch = format!("loadgen_scratch_{}", std::process::id());
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"
        )))
        .await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{scratch}\""
        )))
        .await
        .with_context(|| format!("creating scratch database {scratch}"))?;
    let scratch_opts = admin_opts.clone().database(&scratch);
    let result = levels(args, &scratch_opts).await;
    let dropped = admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"
        )))
        .await;
    let _ = admin.close().await;
    let levels = result?;
    dropped.with_context(|| format!("dropping scratch database {scratch}"))?;
    Ok(PgReport {
        scenario: "baseline-pg",
        started_at,
        settings,
        row_bytes_approx: 8 + 16 + "MessageSent".len() + payload(0, 0).to_string().len(),
        statement: INSERT,
        levels,
    })
}

async fn settings(c: &mut PgConnection) -> anyhow::Result<PgSettings> {
    async fn show(c: &mut PgConnection, name: &str) -> anyhow::Result<String> {
        let (v,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SHOW {name}")))
            .fetch_one(&mut *c)
            .await
            .with_context(|| format!("SHOW {name}"))?;
        Ok(v)
    }
    Ok(PgSettings {
        server_version: show(c, "server_version").await?,
        synchronous_commit: show(c, "synchronous_commit").await?,
        fsync: show(c, "fsync").await?,
        wal_sync_method: show(c, "wal_sync_method").await?,
        commit_delay: show(c, "commit_delay").await?,
        full_page_writes: show(c, "full_page_writes").await?,
    })
}

/// About 200 bytes of JSON, like a message event's data.
fn payload(client: usize, n: u64) -> serde_json::Value {
    serde_json::json!({
        "room_id": "0190f2a4-7c1e-7b6a-9d3e-5f2c8a1b4e6d",
        "message_id": "0190f2a4-7c1e-7b6a-9d3e-000000000000",
        "sender_id": "0190f2a4-7c1e-7b6a-9d3e-5f2c8a1b4e6d",
        "seq": n,
        "body": format!("raw baseline row from client {client:04}, n {n:012}"),
    })
}

async fn levels(args: &PgArgs, opts: &PgConnectOptions) -> anyhow::Result<Vec<PgLevel>> {
    {
        let mut c = PgConnection::connect_with(opts).await?;
        c.execute(CREATE_TABLE).await?;
        let _ = c.close().await;
    }
    let mut out = Vec::new();
    for &n in &args.clients {
        out.push(level(args, opts, n).await?);
        // Each level starts from an empty table, so levels are comparable.
        let mut c = PgConnection::connect_with(opts).await?;
        c.execute("TRUNCATE loadgen_events").await?;
        c.execute("CHECKPOINT").await.ok();
        let _ = c.close().await;
    }
    Ok(out)
}

struct ClientResult {
    hist: Histogram<u64>,
    errors: Errors,
    ok: u64,
    max_lag: Duration,
}

/// When a client's next commit is due: at once (closed loop), or at the next
/// free slot of the open loop's schedule.
fn due(slots: Option<&Slots>) -> Instant {
    slots.map_or_else(Instant::now, |s| s.take().1)
}

async fn level(args: &PgArgs, opts: &PgConnectOptions, n: usize) -> anyhow::Result<PgLevel> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(
            PgConnection::connect_with(opts)
                .await
                .context("opening a client connection")?,
        );
    }
    let start = Instant::now() + Duration::from_millis(100);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let ok_ctr = Arc::new(AtomicU64::new(0));
    let slots = args.rate.map(|r| Slots::new(start, r));
    let mut tasks = Vec::with_capacity(n);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (ok_ctr, slots) = (ok_ctr.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = ClientResult {
                hist: stats::new_histogram(),
                errors: Errors::default(),
                ok: 0,
                max_lag: Duration::ZERO,
            };
            tokio::time::sleep_until(start).await;
            let mut k = 0u64;
            loop {
                // Latency runs from here: the scheduled time in an open loop.
                let t0 = due(slots.as_ref());
                if t0 >= end {
                    break;
                }
                tokio::time::sleep_until(t0).await;
                if t0 >= measure_from {
                    r.max_lag = r.max_lag.max(Instant::now().saturating_duration_since(t0));
                }
                k += 1;
                let res = sqlx::query(INSERT)
                    .bind(uuid::Uuid::now_v7())
                    .bind("MessageSent")
                    .bind(payload(i, k))
                    .execute(&mut conn)
                    .await;
                let t1 = Instant::now();
                // An open loop counts every commit scheduled in the window, however
                // late it finished; a closed loop only those that finished inside it.
                let counted = t0 >= measure_from && (slots.is_some() || t1 <= end);
                match res {
                    Ok(_) => {
                        ok_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            r.ok += 1;
                            stats::record(&mut r.hist, t1 - t0);
                        }
                    }
                    Err(e) => {
                        if counted {
                            r.errors.add(error_key(&e));
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            let _ = conn.close().await;
            r
        }));
    }
    let total = args.warmup + args.duration + Duration::from_millis(100);
    let pb = stats::progress(
        total.as_millis() as u64,
        total >= Duration::from_secs(3),
        &format!("pg c={n}"),
    );
    let ticker = {
        let pb = pb.clone();
        let ok_ctr = ok_ctr.clone();
        let t_start = Instant::now();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                pb.set_position(t_start.elapsed().as_millis() as u64);
                pb.set_message(format!("{} commits", ok_ctr.load(Ordering::Relaxed)));
            }
        })
    };
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = CpuSnapshot::take();
    tokio::time::sleep_until(end).await;
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    let mut hist = stats::new_histogram();
    let mut errors = Errors::default();
    let mut ok = 0;
    let mut max_lag = Duration::ZERO;
    for t in tasks {
        match t.await {
            Ok(r) => {
                let _ = hist.add(&r.hist);
                errors.merge(&r.errors);
                ok += r.ok;
                max_lag = max_lag.max(r.max_lag);
            }
            Err(_) => errors.add("client-task-panicked"),
        }
    }
    ticker.abort();
    pb.finish_and_clear();
    Ok(PgLevel {
        clients: n,
        target_rate_per_s: args.rate,
        max_lag_ms: args.rate.map(|_| max_lag.as_secs_f64() * 1000.0),
        duration_s: args.duration.as_secs_f64(),
        commits: ok,
        commits_per_s: ok as f64 / args.duration.as_secs_f64().max(1e-9),
        errors,
        latency: Latency::of(&hist),
        distribution: stats::distribution(&hist),
        cpu,
        histogram: hist,
    })
}

fn error_key(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.code().map_or("db".into(), |c| format!("sqlstate {c}")),
        sqlx::Error::Io(_) => "io".into(),
        sqlx::Error::PoolTimedOut => "timeout".into(),
        _ => "other".into(),
    }
}

pub fn table(r: &PgReport) -> Table {
    let s = &r.settings;
    let mut t = Table::new(
        format!(
            "raw PostgreSQL {} single-row INSERT+COMMIT (synchronous_commit={}, fsync={}, wal_sync_method={})",
            s.server_version, s.synchronous_commit, s.fsync, s.wal_sync_method
        ),
        &[
            "clients",
            "offered/s",
            "commits/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors",
            "cpu (cores)",
        ],
    );
    for l in &r.levels {
        t.row(
            [
                vec![
                    l.clients.to_string(),
                    l.target_rate_per_s.map_or("closed loop".into(), f0),
                    f0(l.commits_per_s),
                ],
                l.latency.cells().to_vec(),
                vec![
                    l.errors.brief(),
                    l.cpu.as_ref().map_or("-".into(), CpuUsage::brief),
                ],
            ]
            .concat(),
        );
    }
    t
}

/// Whether the report's levels ran on a fixed schedule.
fn open_loop(r: &PgReport) -> bool {
    r.levels.iter().any(|l| l.target_rate_per_s.is_some())
}

pub fn emit(r: &PgReport, out: &Path) -> anyhow::Result<()> {
    table(r).print();
    let stem = if open_loop(r) {
        "baseline-pg-open-loop"
    } else {
        "baseline-pg"
    };
    let json = report::write_json(out, &format!("{stem}.json"), r)?;
    let svg = out.join(format!("{stem}-throughput.svg"));
    report::plot_xy(
        &svg,
        "raw PostgreSQL single-row INSERT+COMMIT vs concurrency",
        "concurrent clients (connections)",
        "commits/s",
        &[(
            "PostgreSQL commits/s".into(),
            r.levels
                .iter()
                .map(|l| (l.clients as f64, l.commits_per_s))
                .collect(),
        )],
    )?;
    let lat = out.join(format!("{stem}-latency.svg"));
    let curves: Vec<(String, &Histogram<u64>)> = r
        .levels
        .iter()
        .map(|l| {
            let name = match l.target_rate_per_s {
                Some(rate) => format!("open loop {rate:.0}/s, {} clients", l.clients),
                None => format!("{} clients", l.clients),
            };
            (name, &l.histogram)
        })
        .collect();
    report::plot_percentiles(
        &lat,
        "raw PostgreSQL INSERT+COMMIT: latency distribution",
        &curves,
    )?;
    for f in [json, svg, lat] {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_hands_out_consecutive_slots_and_a_closed_loop_the_present() {
        let start = Instant::now() + Duration::from_secs(1);
        let open = Slots::new(start, 250.0);
        let other_client = open.clone();
        assert_eq!(due(Some(&open)), start);
        assert_eq!(due(Some(&other_client)), start + Duration::from_millis(4));
        assert_eq!(due(Some(&open)), start + Duration::from_millis(8));

        assert_eq!(due(None), Instant::now());
    }
}
