//! `send`: durable send-message throughput and latency through the command API.
//!
//! Closed loop (default): N clients, each on its own keep-alive connection,
//! send as fast as responses come back. Open loop (`--rate`): sends are
//! scheduled at fixed intervals and latency is measured from the *intended*
//! send time, so a stalled server is not hidden by the generator waiting for
//! it (no coordinated omission).

use crate::http::{Conn, Target, bearer, field, post};
use crate::report::{self, Table, f0};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, Slots, parse_duration};
use anyhow::anyhow;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct SendArgs {
    /// Base URL of the command API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent clients (one connection each); a list runs each level in turn.
    /// With --rate, the largest is the number of connections of the open loop.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub clients: Vec<usize>,
    /// Measured time per level.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before each level (connections and caches warm up).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Public rooms created for the run; client i sends into room i mod R.
    #[arg(long, default_value_t = 16)]
    pub rooms: usize,
    /// Users registered for the run (each joins every room); client i sends as user i mod U.
    #[arg(long, default_value_t = 8)]
    pub users: usize,
    /// Open loop: total messages per second, on a fixed schedule.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Message body length in bytes.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Per-request timeout (counted as an error "timeout").
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// One measured level.
#[derive(Clone, Debug, Serialize)]
pub struct Level {
    /// "closed" or "open".
    pub mode: &'static str,
    pub clients: usize,
    pub target_rate_per_s: Option<f64>,
    pub duration_s: f64,
    pub accepted: u64,
    pub accepted_per_s: f64,
    pub errors: Errors,
    pub error_total: u64,
    pub latency: Latency,
    /// (percentile, ms) points of the latency distribution.
    pub distribution: Vec<(f64, f64)>,
    /// Open loop: the largest delay between a send's scheduled time and the
    /// moment a connection was free to send it (ms); large means too few connections.
    pub max_send_lag_ms: Option<f64>,
    pub cpu: Option<CpuUsage>,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SendReport {
    pub scenario: &'static str,
    pub url: String,
    pub started_at: String,
    pub users: usize,
    pub rooms: usize,
    pub body_bytes: usize,
    pub warmup_s: f64,
    pub levels: Vec<Level>,
}

/// Users and rooms made through the public API for this run.
pub(crate) struct Fixture {
    pub target: Target,
    pub tokens: Vec<HeaderValue>,
    pub rooms: Vec<String>,
    pub run_id: String,
}

pub async fn run(args: &SendArgs, out: &Path) -> anyhow::Result<SendReport> {
    let report = measure(args).await?;
    emit(&report, out)?;
    Ok(report)
}

/// Runs the levels without writing anything (used by `all`).
pub async fn measure(args: &SendArgs) -> anyhow::Result<SendReport> {
    if args.clients.is_empty() || args.clients.contains(&0) {
        return Err(anyhow!("--clients needs positive numbers"));
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    let fx = setup(args).await?;
    let mut levels = Vec::new();
    match args.rate {
        Some(rate) => {
            let n = args.clients.iter().copied().max().unwrap_or(1);
            levels.push(open_level(&fx, args, n, rate).await);
        }
        None => {
            for &n in &args.clients {
                levels.push(closed_level(&fx, args, n).await);
            }
        }
    }
    Ok(SendReport {
        scenario: "send",
        url: args.url.clone(),
        started_at,
        users: fx.tokens.len(),
        rooms: fx.rooms.len(),
        body_bytes: args.body_bytes,
        warmup_s: args.warmup.as_secs_f64(),
        levels,
    })
}

pub fn table(r: &SendReport) -> Table {
    let mut t = Table::new(
        format!(
            "send via {} ({} users, {} rooms, {}-byte bodies)",
            r.url, r.users, r.rooms, r.body_bytes
        ),
        &[
            "mode",
            "clients",
            "target/s",
            "msgs/s",
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
                    l.mode.into(),
                    l.clients.to_string(),
                    l.target_rate_per_s.map_or("-".into(), f0),
                    f0(l.accepted_per_s),
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

pub fn emit(r: &SendReport, out: &Path) -> anyhow::Result<()> {
    table(r).print();
    let json = report::write_json(out, "send.json", r)?;
    let curves: Vec<(String, &Histogram<u64>)> = r
        .levels
        .iter()
        .map(|l| {
            let name = match l.target_rate_per_s {
                Some(rate) => format!("open loop {rate:.0}/s, {} conns", l.clients),
                None => format!("{} clients", l.clients),
            };
            (name, &l.histogram)
        })
        .collect();
    let pct = out.join("send-latency.svg");
    report::plot_percentiles(&pct, "send message: latency distribution", &curves)?;
    let mut files = vec![json, pct];
    if r.levels.iter().all(|l| l.mode == "closed") && r.levels.len() > 1 {
        let tput = out.join("send-throughput.svg");
        report::plot_xy(
            &tput,
            "send message: accepted msgs/s vs concurrency",
            "concurrent clients",
            "accepted messages/s",
            &[(
                "API send".into(),
                r.levels
                    .iter()
                    .map(|l| (l.clients as f64, l.accepted_per_s))
                    .collect(),
            )],
        )?;
        files.push(tput);
    }
    for f in files {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}

/// Registers users, creates public rooms and has every user join every room.
pub(crate) async fn setup(args: &SendArgs) -> anyhow::Result<Fixture> {
    let target = Target::parse(&args.url)?;
    let mut conn = Conn::new(target.clone(), Duration::from_secs(30));
    conn.connect()
        .await
        .map_err(|e| anyhow!("cannot reach {}: {e}", args.url))?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let users = args.users.max(1);
    let rooms_n = args.rooms.max(1);
    report::say(&format!(
        "setup: registering {users} users, creating {rooms_n} public rooms (run {run_id})"
    ));
    let mut tokens = Vec::with_capacity(users);
    for u in 0..users {
        let v = post(
            &mut conn,
            "/v1/auth/register",
            None,
            &json!({"username": format!("lg{run_id}_{u}"), "password": "loadgen-password-0123"}),
        )
        .await?;
        tokens.push(bearer(&field(&v, "access_token")?)?);
    }
    let mut rooms = Vec::with_capacity(rooms_n);
    for r in 0..rooms_n {
        let owner = &tokens[r % users];
        let v = post(
            &mut conn,
            "/v1/rooms",
            Some(owner),
            &json!({"name": format!("loadgen {run_id} {r}"), "visibility": "public"}),
        )
        .await?;
        rooms.push(field(&v, "room_id")?);
    }
    for (r, room) in rooms.iter().enumerate() {
        for (u, tok) in tokens.iter().enumerate() {
            if u == r % users {
                continue; // the creator is a member already
            }
            post(
                &mut conn,
                &format!("/v1/rooms/{room}/join"),
                Some(tok),
                &json!({}),
            )
            .await?;
        }
    }
    Ok(Fixture {
        target,
        tokens,
        rooms,
        run_id,
    })
}

/// What one client task brings back.
struct ClientResult {
    hist: Histogram<u64>,
    errors: Errors,
    ok: u64,
    max_lag: Duration,
}

impl ClientResult {
    fn new() -> Self {
        Self {
            hist: stats::new_histogram(),
            errors: Errors::default(),
            ok: 0,
            max_lag: Duration::ZERO,
        }
    }
}

/// A client's fixed request parts.
struct Sender {
    conn: Conn,
    path: String,
    token: HeaderValue,
    prefix: String,
    body: String,
    n: u64,
}

impl Sender {
    fn new(fx: &Fixture, args: &SendArgs, level: usize, i: usize) -> Self {
        let room = &fx.rooms[i % fx.rooms.len()];
        let body: String = format!("loadgen message from client {i} ")
            .chars()
            .cycle()
            .take(args.body_bytes.clamp(1, 4000))
            .collect();
        Self {
            conn: Conn::new(fx.target.clone(), args.timeout),
            path: format!("/v1/rooms/{room}/messages"),
            token: fx.tokens[i % fx.tokens.len()].clone(),
            prefix: format!("{}-{level}-{i}", fx.run_id),
            body,
            n: 0,
        }
    }

    /// Sends one message with a fresh client_msg_id; Ok(()) on 2xx, else the error key.
    async fn send(&mut self) -> Result<(), String> {
        self.n += 1;
        let payload = json!({
            "client_msg_id": format!("{}-{}", self.prefix, self.n),
            "body": self.body,
        });
        let bytes = Bytes::from(serde_json::to_vec(&payload).map_err(|_| "encode".to_owned())?);
        match self
            .conn
            .post_json(&self.path, Some(&self.token), bytes)
            .await
        {
            Ok((s, _)) if s.is_success() => Ok(()),
            Ok((s, _)) => Err(s.as_u16().to_string()),
            Err(e) => Err(e.kind().to_owned()),
        }
    }
}

async fn closed_level(fx: &Fixture, args: &SendArgs, n: usize) -> Level {
    let start = Instant::now() + Duration::from_millis(200 + 5 * n as u64);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let ok_ctr = Arc::new(AtomicU64::new(0));
    let err_ctr = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = Sender::new(fx, args, n, i);
        let (ok_ctr, err_ctr) = (ok_ctr.clone(), err_ctr.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = ClientResult::new();
            if let Err(e) = s.conn.connect().await {
                r.errors.add(e.kind());
                return r;
            }
            tokio::time::sleep_until(start).await;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let res = s.send().await;
                let t1 = Instant::now();
                let counted = t0 >= measure_from && t1 <= end;
                match res {
                    Ok(()) => {
                        ok_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            r.ok += 1;
                            stats::record(&mut r.hist, t1 - t0);
                        }
                    }
                    Err(key) => {
                        err_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            r.errors.add(key);
                        }
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            r
        }));
    }
    let progress = stats::spawn_progress(
        format!("send c={n}"),
        start,
        args.warmup + args.duration,
        ok_ctr,
        err_ctr,
    );
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = CpuSnapshot::take();
    tokio::time::sleep_until(end).await;
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    let merged = join(tasks).await;
    let _ = progress.await;
    level_from("closed", n, None, args.duration, merged, cpu, false)
}

async fn open_level(fx: &Fixture, args: &SendArgs, n: usize, rate: f64) -> Level {
    let start = Instant::now() + Duration::from_millis(200 + 5 * n as u64);
    let slots = Slots::new(start, rate);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let ok_ctr = Arc::new(AtomicU64::new(0));
    let err_ctr = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = Sender::new(fx, args, n, i);
        let (slots, ok_ctr, err_ctr) = (slots.clone(), ok_ctr.clone(), err_ctr.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = ClientResult::new();
            if let Err(e) = s.conn.connect().await {
                r.errors.add(e.kind());
                return r;
            }
            loop {
                let (_, intended) = slots.take();
                if intended >= end {
                    break;
                }
                tokio::time::sleep_until(intended).await;
                let lag = Instant::now().saturating_duration_since(intended);
                let res = s.send().await;
                let done = Instant::now();
                let counted = intended >= measure_from;
                if counted {
                    r.max_lag = r.max_lag.max(lag);
                }
                match res {
                    Ok(()) => {
                        ok_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            r.ok += 1;
                            // From the scheduled time, not from when it went out.
                            stats::record(&mut r.hist, done - intended);
                        }
                    }
                    Err(key) => {
                        err_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            r.errors.add(key);
                        }
                    }
                }
            }
            r
        }));
    }
    let progress = stats::spawn_progress(
        format!("send {rate:.0}/s"),
        start,
        args.warmup + args.duration,
        ok_ctr,
        err_ctr,
    );
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = CpuSnapshot::take();
    tokio::time::sleep_until(end).await;
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    let merged = join(tasks).await;
    let _ = progress.await;
    level_from("open", n, Some(rate), args.duration, merged, cpu, true)
}

async fn join(tasks: Vec<tokio::task::JoinHandle<ClientResult>>) -> ClientResult {
    let mut all = ClientResult::new();
    for t in tasks {
        match t.await {
            Ok(r) => {
                let _ = all.hist.add(&r.hist);
                all.errors.merge(&r.errors);
                all.ok += r.ok;
                all.max_lag = all.max_lag.max(r.max_lag);
            }
            Err(_) => all.errors.add("client-task-panicked"),
        }
    }
    all
}

fn level_from(
    mode: &'static str,
    clients: usize,
    rate: Option<f64>,
    duration: Duration,
    r: ClientResult,
    cpu: Option<CpuUsage>,
    open: bool,
) -> Level {
    Level {
        mode,
        clients,
        target_rate_per_s: rate,
        duration_s: duration.as_secs_f64(),
        accepted: r.ok,
        accepted_per_s: r.ok as f64 / duration.as_secs_f64().max(1e-9),
        error_total: r.errors.total(),
        errors: r.errors,
        latency: Latency::of(&r.hist),
        distribution: stats::distribution(&r.hist),
        max_send_lag_ms: open.then_some(r.max_lag.as_secs_f64() * 1000.0),
        cpu,
        histogram: r.hist,
    }
}
