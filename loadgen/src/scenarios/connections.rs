//! `connections`: hold N idle authenticated WebSockets (each subscribed to one
//! room) and report the server process's memory per connection:
//! (VmRSS after opening − VmRSS before) / sockets open.
//!
//! The server is found by `--pid` or by process name (`chat`) in /proc. Client
//! sockets are bound to 127.0.0.2–251 so ephemeral ports do not run out; the
//! load generator raises its own open-file limit to the hard limit and says
//! when N does not fit under it, or under the server's limit.
//!
//! Run it against a freshly started server: memory that the server's allocator
//! kept from earlier sockets is reused and would hide the cost of new ones.
//! The access token's lifetime (`access_ttl_secs`, 15 min by default) bounds
//! how long the sockets can be held: the server closes them with 4001 then.

use super::fanout::{self, Dialer, Opened};
use crate::report::{self, Table, f0, f2, f3};
use crate::stats::{self, Errors, Latency, parse_duration};
use anyhow::anyhow;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectionsArgs {
    /// Base URL of the platform.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Where the WebSockets go, when the query API is a process of its own (default: --url).
    /// Users and rooms are always set up through --url.
    #[arg(long)]
    pub ws_url: Option<String>,
    /// Idle WebSockets to open and hold; socket i subscribes to room i mod R.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Public rooms created for the run.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Users the sockets authenticate as (socket i as user i mod U).
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    /// PID of the server process (default: the one process named --process).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Process name (/proc/PID/comm) to look for when --pid is not given.
    #[arg(long, default_value = "chat")]
    pub process: String,
    /// Time to hold the sockets after the last one opened, before reading RSS again.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub hold: Duration,
    /// WebSocket handshakes (connect + upgrade + subscribe) in flight at once.
    #[arg(long, default_value_t = 128)]
    pub open_concurrency: usize,
    /// Per-socket timeout for connect + upgrade + subscribe.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Do not bind client sockets to 127.0.0.2–251.
    #[arg(long)]
    pub no_spread: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnectionsReport {
    pub scenario: &'static str,
    pub url: String,
    pub started_at: String,
    pub requested: usize,
    pub opened: u64,
    pub open_errors: Errors,
    /// Sockets the server closed (or that failed) while held, by reason.
    pub lost_while_held: Errors,
    pub rooms: usize,
    pub users: usize,
    pub source_addresses: usize,
    /// Time from the first connect to the last `subscribed` (or failure).
    pub open_s: f64,
    pub opened_per_s: f64,
    /// connect + upgrade + subscribe, per socket.
    pub handshake: Latency,
    pub hold_s: f64,
    pub server_pid: Option<u32>,
    /// (soft, hard) `Max open files` of the server process.
    pub server_nofile: Option<(u64, u64)>,
    /// (soft, hard) RLIMIT_NOFILE of the load generator after raising it.
    pub loadgen_nofile: Option<(u64, u64)>,
    pub rss_before_kib: Option<u64>,
    pub rss_held_kib: Option<u64>,
    pub rss_after_close_kib: Option<u64>,
    pub server_fds_before: Option<u64>,
    pub server_fds_held: Option<u64>,
    /// (RSS held − RSS before) / sockets open.
    pub bytes_per_connection: Option<f64>,
    pub loadgen_rss_held_kib: Option<u64>,
    /// Samples while opening: (sockets open, server RSS KiB).
    pub rss_samples: Vec<(u64, u64)>,
    pub notes: Vec<String>,
    #[serde(skip)]
    pub hist: Histogram<u64>,
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; a note when
/// `needed` descriptors do not fit under it (or the limits cannot be read).
pub fn raise_nofile(needed: usize) -> Option<String> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        return Some(format!("note: cannot raise RLIMIT_NOFILE: {e}"));
    }
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, hard)) if (needed as u64) > soft => Some(format!(
            "WARNING: about {needed} file descriptors needed but RLIMIT_NOFILE is {soft} \
             (hard {hard}); sockets beyond it will fail with EMFILE \
             (raise the hard limit: ulimit -Hn, /etc/security/limits.conf, systemd LimitNOFILE)"
        )),
        Ok(_) => None,
        Err(e) => Some(format!("note: cannot read RLIMIT_NOFILE: {e}")),
    }
}

fn nofile_self() -> Option<(u64, u64)> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
}

/// The PID given, or the single process whose comm is `name`.
fn find_pid(given: Option<u32>, name: &str) -> anyhow::Result<u32> {
    if let Some(p) = given {
        if !Path::new(&format!("/proc/{p}")).exists() {
            return Err(anyhow!("no process {p}"));
        }
        return Ok(p);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm"))
            && comm.trim_end() == name
        {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [p] => Ok(*p),
        [] => Err(anyhow!("no process named {name:?}; pass --pid")),
        many => Err(anyhow!(
            "several processes named {name:?} ({many:?}); pass --pid"
        )),
    }
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `VmHWM`, …), in KiB.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    status_kib(&pid?.to_string(), "VmRSS")
}

fn fd_count(pid: Option<u32>) -> Option<u64> {
    Some(
        std::fs::read_dir(format!("/proc/{}/fd", pid?))
            .ok()?
            .count() as u64,
    )
}

/// Seconds since the process started (/proc/PID/stat starttime, USER_HZ = 100).
fn process_age_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); starttime is field 22.
    let start_ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(uptime - start_ticks / 100.0)
}

/// (soft, hard) `Max open files` from /proc/PID/limits.
fn nofile_of(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let rest = s.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    let mut f = rest.split_whitespace();
    let parse = |v: Option<&str>| match v? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(f.next())?, parse(f.next())?))
}

pub async fn run(args: &ConnectionsArgs, out: &Path) -> anyhow::Result<ConnectionsReport> {
    let r = measure(args).await?;
    emit(&r, out)?;
    Ok(r)
}

pub async fn measure(args: &ConnectionsArgs) -> anyhow::Result<ConnectionsReport> {
    if args.connections == 0 || args.rooms == 0 {
        return Err(anyhow!("--connections and --rooms must be positive"));
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    let mut notes = Vec::new();
    if let Some(n) = raise_nofile(args.connections + 64) {
        notes.push(n);
    }
    let pid = match find_pid(args.pid, &args.process) {
        Ok(p) => Some(p),
        Err(e) => {
            notes.push(format!(
                "WARNING: {e}: server memory is not measured (run on the server's machine)"
            ));
            None
        }
    };
    let server_nofile = pid.and_then(nofile_of);
    if let Some((soft, _)) = server_nofile
        && (args.connections as u64) + 64 > soft
    {
        notes.push(format!(
            "WARNING: the server's open-file limit is {soft}: it cannot hold {} sockets \
             (plus its own files); start it with a higher `ulimit -n`",
            args.connections
        ));
    }
    if let Some(age) = pid.and_then(process_age_s)
        && age > 60.0
    {
        notes.push(format!(
            "note: the server has been up {age:.0}s; memory its allocator kept from earlier \
             connections is reused and hides the cost of new ones; for the figure, measure \
             against a freshly started server"
        ));
    }
    for n in &notes {
        report::say(n);
    }

    let fx = Arc::new(fanout::setup(&args.url, args.users, args.rooms).await?);
    let ws_url = args.ws_url.as_deref().unwrap_or(&args.url);
    let dialer = Dialer::new(ws_url, !args.no_spread).await?;
    // Let the setup's work (and its allocations) settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);
    let fds_before = fd_count(pid);
    report::say(&format!(
        "server pid {}: RSS {} KiB, {} fds; opening {} WebSockets from {} source address(es)",
        pid.map_or("?".into(), |p| p.to_string()),
        rss_before.map_or("?".into(), |v| v.to_string()),
        fds_before.map_or("?".into(), |v| v.to_string()),
        args.connections,
        dialer.source_addresses()
    ));

    // A few descriptors kept back, so /proc can still be read when the
    // sockets have used up RLIMIT_NOFILE.
    let reserve: Vec<std::fs::File> = (0..8)
        .filter_map(|_| std::fs::File::open("/dev/null").ok())
        .collect();
    let open_ctr = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (opened_tx, opened_rx) = mpsc::channel::<Opened>(1024);
    let gate = Arc::new(Semaphore::new(args.open_concurrency.max(1)));
    let open_start = Instant::now();
    let sampler = {
        let open_ctr = open_ctr.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tick.tick() => {
                        if let Some(rss) = rss_kib(pid) {
                            samples.push((open_ctr.load(Ordering::Relaxed), rss));
                        }
                    }
                }
            }
            samples
        })
    };
    let mut sockets = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let (fx, dialer, gate, opened_tx, open_ctr) = (
            fx.clone(),
            dialer.clone(),
            gate.clone(),
            opened_tx.clone(),
            open_ctr.clone(),
        );
        let mut stop = stop_rx.clone();
        let timeout = args.timeout;
        sockets.push(tokio::spawn(async move {
            let room = &fx.rooms[i % fx.rooms.len()];
            let token = &fx.listeners[i % fx.listeners.len()];
            let ws = fanout::open_subscribed(&dialer, &gate, i, token, room, timeout).await;
            let mut ws = match ws {
                Ok((ws, took)) => {
                    open_ctr.fetch_add(1, Ordering::Relaxed);
                    let _ = opened_tx.send((i, Ok(took))).await;
                    ws
                }
                Err(e) => {
                    let _ = opened_tx.send((i, Err(e))).await;
                    return None;
                }
            };
            drop(opened_tx);
            // Idle, but reading: tungstenite answers the server's pings.
            let lost = loop {
                tokio::select! {
                    _ = stop.changed() => break None,
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Close(c))) => {
                            break Some(format!("closed-{}", c.map_or(0, |c| u16::from(c.code))));
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) => break Some("ws-error".to_owned()),
                        None => break Some("eof".to_owned()),
                    }
                }
            };
            if lost.is_none() {
                let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
            }
            lost
        }));
    }
    drop(opened_tx);
    let opened = fanout::collect_opened(opened_rx, args.connections, "connections").await;
    let open_s = open_start.elapsed().as_secs_f64();
    let mut hist = stats::new_histogram();
    let mut open_errors = Errors::default();
    for (_, r) in &opened {
        match r {
            Ok(d) => stats::record(&mut hist, *d),
            Err(e) => open_errors.add(e.clone()),
        }
    }
    let n_open = open_ctr.load(Ordering::Relaxed);
    report::say(&format!(
        "{n_open}/{} open in {open_s:.1}s (errors: {}); holding {:.0}s",
        args.connections,
        open_errors.brief(),
        args.hold.as_secs_f64()
    ));
    tokio::time::sleep(args.hold).await;
    drop(reserve);
    let rss_held = rss_kib(pid);
    let fds_held = fd_count(pid);
    let loadgen_rss = status_kib("self", "VmRSS");

    let _ = stop_tx.send(true);
    let mut lost = Errors::default();
    for t in sockets {
        match t.await {
            Ok(Some(why)) => lost.add(why),
            Ok(None) => {}
            Err(_) => lost.add("task-panicked"),
        }
    }
    let rss_samples = sampler.await.unwrap_or_default();
    // Give the server a moment to tear the connections down.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_close = rss_kib(pid);
    let bytes_per_connection = match (rss_before, rss_held) {
        (Some(b), Some(a)) if n_open > 0 => Some((a as f64 - b as f64) * 1024.0 / n_open as f64),
        _ => None,
    };
    Ok(ConnectionsReport {
        scenario: "connections",
        url: ws_url.to_owned(),
        started_at,
        requested: args.connections,
        opened: n_open,
        open_errors,
        lost_while_held: lost,
        rooms: fx.rooms.len(),
        users: fx.listeners.len(),
        source_addresses: dialer.source_addresses(),
        open_s,
        opened_per_s: n_open as f64 / open_s.max(1e-9),
        handshake: Latency::of(&hist),
        hold_s: args.hold.as_secs_f64(),
        server_pid: pid,
        server_nofile,
        loadgen_nofile: nofile_self(),
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        rss_after_close_kib: rss_after_close,
        server_fds_before: fds_before,
        server_fds_held: fds_held,
        bytes_per_connection,
        loadgen_rss_held_kib: loadgen_rss,
        rss_samples,
        notes,
        hist,
    })
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

pub fn table(r: &ConnectionsReport) -> Table {
    let mut t = Table::new(
        format!(
            "connections via {}: idle WebSockets, server pid {}",
            r.url,
            opt(r.server_pid)
        ),
        &[
            "requested",
            "open",
            "errors",
            "lost",
            "open s",
            "open/s",
            "handshake p50 ms",
            "p99 ms",
            "RSS before MiB",
            "RSS held MiB",
            "RSS closed MiB",
            "bytes/conn",
            "server fds",
        ],
    );
    let mib = |v: Option<u64>| v.map_or("-".into(), |k| f2(k as f64 / 1024.0));
    t.row(vec![
        r.requested.to_string(),
        r.opened.to_string(),
        r.open_errors.brief(),
        r.lost_while_held.brief(),
        f2(r.open_s),
        f0(r.opened_per_s),
        f3(r.handshake.p50_ms),
        f3(r.handshake.p99_ms),
        mib(r.rss_before_kib),
        mib(r.rss_held_kib),
        mib(r.rss_after_close_kib),
        r.bytes_per_connection.map_or("-".into(), f0),
        format!("{} → {}", opt(r.server_fds_before), opt(r.server_fds_held)),
    ]);
    t
}

pub fn emit(r: &ConnectionsReport, out: &Path) -> anyhow::Result<()> {
    table(r).print();
    let lim = |v: Option<(u64, u64)>| {
        v.map_or("?".into(), |(s, h)| {
            let f = |x: u64| {
                if x == u64::MAX {
                    "unlimited".into()
                } else {
                    x.to_string()
                }
            };
            format!("{}/{}", f(s), f(h))
        })
    };
    report::say(&format!(
        "open-file limits (soft/hard): server {}, loadgen {}; loadgen RSS while held {} KiB",
        lim(r.server_nofile),
        lim(r.loadgen_nofile),
        opt(r.loadgen_rss_held_kib)
    ));
    for n in &r.notes {
        report::say(n);
    }
    let json = report::write_json(out, "connections.json", r)?;
    let hs = out.join("connections-handshake.svg");
    report::plot_percentiles(
        &hs,
        "connections: connect + upgrade + subscribe time",
        &[(format!("{} sockets", r.opened), &r.hist)],
    )?;
    let mut files = vec![json, hs];
    if !r.rss_samples.is_empty() {
        let mem = out.join("connections-memory.svg");
        report::plot_xy(
            &mem,
            "connections: server RSS against open WebSockets",
            "open WebSockets",
            "server RSS (MiB)",
            &[(
                "server VmRSS".into(),
                r.rss_samples
                    .iter()
                    .map(|&(n, kib)| (n as f64, kib as f64 / 1024.0))
                    .collect(),
            )],
        )?;
        files.push(mem);
    }
    for f in files {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn own_status_and_limits_parse() {
        assert!(status_kib("self", "VmRSS").unwrap() > 0);
        let me = std::process::id();
        let (soft, hard) = nofile_of(me).unwrap();
        assert!(soft <= hard);
        assert!(fd_count(Some(me)).unwrap() > 0);
        let age = process_age_s(me).unwrap();
        assert!((0.0..3600.0).contains(&age), "{age}");
    }

    #[test]
    fn a_missing_pid_is_an_error() {
        assert!(find_pid(Some(u32::MAX), "x").is_err());
        assert!(find_pid(None, "no-such-process-name-xyz").is_err());
    }
}
