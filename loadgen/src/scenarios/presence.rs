//! `presence`: what presence changes cost the server in one big room.
//!
//! N users (`--members`) are members of ONE public room, each with one socket
//! (`GET /v1/ws`, subscribed to the room like a client). The server tells a user's
//! presence change to every user sharing a joined room with them, batched per window
//! (`APP_PRESENCE_BATCH_MS`, ADR 19): one frame per recipient per window, with a
//! `changes` array when the window holds several. Three phases, measured one after
//! another on the same sockets:
//!
//! 1. **Sign-in burst**: with no socket of the members open, all N open at once
//!    (`--open-concurrency` handshakes in flight). Measured from the first open until
//!    presence frames stop arriving for `--quiet`: the server's CPU up to the last
//!    presence frame (a /proc sample taken every 100 ms, the first one after that
//!    frame), presence frames and changes told in all and per socket, and how long a
//!    sign-in took to reach the others (dial start → told).
//! 2. **Churn**: for `--duration`, `--churn-rate` times a second a member's socket
//!    (round robin, never one already closed) is closed (→ offline) and re-opened
//!    `--reopen-after` later (→ online): about twice the rate in presence changes.
//!    Over the window: server CPU, presence frames received by all sockets, changes
//!    told; per change made: CPU and frames; per frame: CPU; frames per socket per second.
//! 3. **Control** (unless `--no-control`): the same socket churn without a presence
//!    change: a *second* socket of an online member is opened and closed
//!    `--reopen-after` later (a user's presence changes only with their first and
//!    last socket). Churn CPU − control CPU is what the presence changes themselves
//!    cost, beyond the handshakes and closes that cause them (`marginal_*`).
//!
//! Server CPU is utime + stime (`/proc/PID/stat`) of `--server-pid` (with children), or
//! of every process named chat, command-api, query-api or projector; the stack figure
//! adds PostgreSQL and nats-server (presence reads the room's members from the read
//! models and writes `last_seen`, and nodes announce over NATS).
//!
//! Every socket is read continuously by its own task; a frame is parsed into a
//! borrowed struct (`type`, `user_id`, `status`, `changes`), nothing else is kept
//! but one record per change told (for the delays).

use super::fanout::{self, Dialer, Opened, ProcScan, ProcTimes, ServerCpu, Ws};
use crate::http::{Conn, Target};
use crate::report::{self, Table, f0, f2};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, parse_duration};
use anyhow::anyhow;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args, Debug, Clone)]
pub struct PresenceArgs {
    /// Base URL of the platform (command and query routes on one port).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Members of the one room, each with one socket (the room's creator is one of them).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Sockets closed per second in the churn phase; each is re-opened --reopen-after
    /// later, so about twice as many presence changes per second.
    #[arg(long, default_value_t = 20.0)]
    pub churn_rate: f64,
    /// Measured churn time (and control time).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long a closed socket stays closed before it is re-opened.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub reopen_after: Duration,
    /// The sign-in burst (and each later phase) has settled when no presence frame
    /// arrived for this long.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub quiet: Duration,
    /// Longest the sign-in burst may take to settle (then it is reported unsettled).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub settle_timeout: Duration,
    /// Skip the control phase (socket churn without presence changes).
    #[arg(long)]
    pub no_control: bool,
    /// WebSocket handshakes (connect + upgrade + subscribe) in flight at once while opening.
    #[arg(long, default_value_t = 64)]
    pub open_concurrency: usize,
    /// Per-handshake and per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Do not bind client sockets to 127.0.0.2–251.
    #[arg(long)]
    pub no_spread: bool,
    /// PIDs of the server processes whose CPU time (with their child processes) is
    /// measured; comma-separated or repeated. Default: every process named chat,
    /// command-api, query-api or projector.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// The server's presence window (`APP_PRESENCE_BATCH_MS`), for the report's text only.
    #[arg(long)]
    pub window_hint_ms: Option<u64>,
}

const SERVER_PROCESSES: &[&str] = &["chat", "command-api", "query-api", "projector"];
const BACKING_PROCESSES: &[&str] = &["postgres", "nats-server"];
/// How often the sign-in burst samples the server's CPU.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Min, median, max and mean of a count per socket.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Spread {
    pub min: u64,
    pub median: u64,
    pub max: u64,
    pub mean: f64,
}

impl Spread {
    fn of(mut v: Vec<u64>) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        Self {
            min: v[0],
            median: v[v.len() / 2],
            max: v[v.len() - 1],
            mean: v.iter().sum::<u64>() as f64 / v.len() as f64,
        }
    }

    /// `3 / 17 / 40`.
    fn brief(&self) -> String {
        format!("{} / {} / {}", self.min, self.median, self.max)
    }
}

/// Presence frames and the changes they told, over all sockets.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ToldCounts {
    pub frames: u64,
    /// Changes told (a frame with `changes` counts its length, else 1).
    pub changes: u64,
    pub online: u64,
    pub offline: u64,
}

impl ToldCounts {
    fn minus(self, before: Self) -> Self {
        Self {
            frames: self.frames.saturating_sub(before.frames),
            changes: self.changes.saturating_sub(before.changes),
            online: self.online.saturating_sub(before.online),
            offline: self.offline.saturating_sub(before.offline),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SignIn {
    /// Sockets that opened and subscribed (each one a user going online).
    pub sockets: usize,
    pub open_errors: Errors,
    /// First open → the last socket subscribed.
    pub open_s: f64,
    /// First open → the last presence frame of the burst.
    pub to_last_frame_s: f64,
    /// Presence went quiet for --quiet before --settle-timeout.
    pub settled: bool,
    /// First open → the end of the quiet tail.
    pub elapsed_s: f64,
    pub told: ToldCounts,
    pub frames_per_socket: Spread,
    pub changes_per_socket: Spread,
    /// The server's CPU from the first open to the first sample after the last presence
    /// frame (`us_per_delivery` is per presence frame).
    pub server_cpu: Option<ServerCpu>,
    /// The same with PostgreSQL and nats-server.
    pub stack_cpu: Option<ServerCpu>,
    /// The server's CPU up to the end of the quiet tail.
    pub server_cpu_to_quiet: Option<ServerCpu>,
    /// Server CPU µs per sign-in (to the last frame).
    pub us_per_change: Option<f64>,
    pub stack_us_per_change: Option<f64>,
    /// Dial start of the user's socket → another socket told they are online.
    pub latency_online: Latency,
    /// The whole machine's CPU over the burst (to the quiet end), by process.
    pub cpu: Option<CpuUsage>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Churn {
    /// `churn` or `control`.
    pub phase: &'static str,
    pub target_rate_per_s: f64,
    pub duration_s: f64,
    pub reopen_after_ms: f64,
    /// Sockets the load generator closed, and opened (upgrade done), in the window.
    pub sockets_closed: u64,
    pub sockets_opened: u64,
    pub open_errors: Errors,
    /// Presence changes made in the window (a member's only socket closed or opened).
    pub offline_changes: u64,
    pub online_changes: u64,
    pub changes: u64,
    pub changes_per_s: f64,
    /// Largest delay of a close behind its schedule (ms).
    pub max_schedule_lag_ms: f64,
    /// Presence frames received by all sockets in the window.
    pub told: ToldCounts,
    pub frames_per_change: Option<f64>,
    pub changes_told_per_change: Option<f64>,
    /// Presence frames per member socket per second of the window.
    pub frames_per_socket_per_s: f64,
    pub frames_per_socket: Spread,
    /// The server's CPU over the window (`us_per_delivery` is per presence frame).
    pub server_cpu: Option<ServerCpu>,
    pub stack_cpu: Option<ServerCpu>,
    /// Server CPU µs per presence change made.
    pub us_per_change: Option<f64>,
    pub stack_us_per_change: Option<f64>,
    /// Close sent → another socket told the user is offline (changes of this phase).
    pub latency_offline: Latency,
    /// Dial start → another socket told the user is online.
    pub latency_online: Latency,
    pub cpu: Option<CpuUsage>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PresenceReport {
    pub scenario: &'static str,
    pub url: String,
    pub started_at: String,
    pub members: usize,
    /// Joined members of the room per the read models when the run began.
    pub room_members: usize,
    pub window_hint_ms: Option<u64>,
    pub source_addresses: usize,
    pub sign_in: SignIn,
    pub churn: Churn,
    pub control: Option<Churn>,
    /// (churn − control) server CPU per presence change made: the presence changes'
    /// own cost, beyond the socket handshakes and closes that cause them.
    pub marginal_us_per_change: Option<f64>,
    pub marginal_stack_us_per_change: Option<f64>,
    /// The same per presence frame received in the churn window.
    pub marginal_us_per_frame: Option<f64>,
    /// Sockets the server closed or that failed, by reason.
    pub sockets_lost: Errors,
    pub error_frames: u64,
    /// Frames that were not JSON of the expected shape.
    pub unparsed_frames: u64,
    /// Changes told about a user who is not a member of the run.
    pub unknown_users: u64,
    /// Changes told (before the sockets were closed at the end) that match no change
    /// made: no earlier change of that kind of that user.
    pub unmatched_changes: u64,
}

pub async fn run(args: &PresenceArgs, out: &Path) -> anyhow::Result<PresenceReport> {
    let r = measure(args).await?;
    emit(&r, out)?;
    Ok(r)
}

// ---------------------------------------------------------------------------
// The sockets.
// ---------------------------------------------------------------------------

/// The fields of a server frame that matter here (borrowed: nothing is allocated but
/// the `changes` vector).
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    ty: &'a str,
    #[serde(default, borrow)]
    room_id: Option<&'a str>,
    #[serde(default, borrow)]
    user_id: Option<&'a str>,
    #[serde(default, borrow)]
    status: Option<&'a str>,
    #[serde(default, borrow)]
    changes: Option<Vec<ChangeTold<'a>>>,
}

#[derive(Deserialize)]
struct ChangeTold<'a> {
    #[serde(borrow)]
    user_id: &'a str,
    #[serde(borrow)]
    status: &'a str,
}

/// The `(user_id, online)` changes a presence frame tells; `None` for other frames.
fn changes_of<'a>(f: &Frame<'a>) -> Option<Vec<(&'a str, bool)>> {
    if f.ty != "presence" {
        return None;
    }
    Some(match &f.changes {
        Some(all) => all
            .iter()
            .map(|c| (c.user_id, c.status == "online"))
            .collect(),
        None => vec![(f.user_id?, f.status? == "online")],
    })
}

/// A presence change the load generator made, or one a socket was told of:
/// `(member, online, when)`.
type Change = (u32, bool, Instant);

/// What the sockets share: who they are, and the counters they add to.
struct Ctx {
    dialer: Dialer,
    /// `Bearer …` of member i.
    tokens: Vec<HeaderValue>,
    room: String,
    subscribe: String,
    /// user_id → member.
    ids: HashMap<String, u32>,
    base: Instant,
    timeout: Duration,
    next_conn: AtomicUsize,
    frames: AtomicU64,
    changes: AtomicU64,
    online: AtomicU64,
    offline: AtomicU64,
    opens: AtomicU64,
    closes: AtomicU64,
    error_frames: AtomicU64,
    unparsed: AtomicU64,
    unknown_users: AtomicU64,
    /// Microseconds since `base` of the last presence frame.
    last_presence_us: AtomicU64,
    frames_by_member: Vec<AtomicU64>,
    changes_by_member: Vec<AtomicU64>,
    /// Changes made (sign-ins, closes, re-opens of a member's only socket).
    made: Mutex<Vec<Change>>,
    /// Changes told, per socket's life, handed over when it ends.
    told: Mutex<Vec<Change>>,
    lost: Mutex<Errors>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ctx {
    fn counts(&self) -> ToldCounts {
        ToldCounts {
            frames: self.frames.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            online: self.online.load(Ordering::Relaxed),
            offline: self.offline.load(Ordering::Relaxed),
        }
    }

    fn by_member(v: &[AtomicU64]) -> Vec<u64> {
        v.iter().map(|a| a.load(Ordering::Relaxed)).collect()
    }

    fn last_presence(&self) -> Option<Instant> {
        match self.last_presence_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(self.base + Duration::from_micros(us)),
        }
    }

    fn made(&self, member: usize, online: bool, at: Instant) {
        lock(&self.made).push((member as u32, online, at));
    }

    /// One text frame of `member`'s socket, received at `now`.
    fn read(&self, member: usize, text: &str, now: Instant, told: &mut Vec<Change>) -> Read {
        let Ok(f) = serde_json::from_str::<Frame<'_>>(text) else {
            self.unparsed.fetch_add(1, Ordering::Relaxed);
            return Read::Other;
        };
        match f.ty {
            "subscribed" if f.room_id == Some(self.room.as_str()) => return Read::Subscribed,
            "error" => {
                self.error_frames.fetch_add(1, Ordering::Relaxed);
                return Read::Error;
            }
            _ => {}
        }
        let Some(changes) = changes_of(&f) else {
            return Read::Other;
        };
        let n = changes.len() as u64;
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(n, Ordering::Relaxed);
        self.frames_by_member[member].fetch_add(1, Ordering::Relaxed);
        self.changes_by_member[member].fetch_add(n, Ordering::Relaxed);
        let us = u64::try_from(now.saturating_duration_since(self.base).as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last_presence_us.fetch_max(us, Ordering::Relaxed);
        let (mut on, mut off) = (0, 0);
        for (user, online) in changes {
            if online {
                on += 1;
            } else {
                off += 1;
            }
            match self.ids.get(user) {
                Some(&m) => told.push((m, online, now)),
                None => {
                    self.unknown_users.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.online.fetch_add(on, Ordering::Relaxed);
        self.offline.fetch_add(off, Ordering::Relaxed);
        Read::Presence
    }
}

enum Read {
    Subscribed,
    Error,
    Presence,
    Other,
}

/// How one socket's life is started and ended.
struct Life {
    member: usize,
    /// Its opening and closing are presence changes (the member's only socket): they
    /// are recorded as changes made.
    announce: bool,
    /// Handshakes in flight are bounded by this (the sign-in burst).
    gate: Option<Arc<Semaphore>>,
    /// Where the outcome of opening goes (the sign-in burst's progress).
    opened: Option<mpsc::Sender<Opened>>,
    /// Opening failures of the phase.
    errors: Arc<Mutex<Errors>>,
    /// Fired (`Ok`) to close the socket by the churn; dropped at the end of the run.
    close: oneshot::Receiver<()>,
    stop: watch::Receiver<bool>,
}

/// Opens a member's socket, subscribes it to the room and reads it until it is closed.
async fn socket_life(ctx: Arc<Ctx>, life: Life) {
    let Life {
        member,
        announce,
        gate,
        opened,
        errors,
        mut close,
        mut stop,
    } = life;
    let mut permit = match &gate {
        Some(g) => g.clone().acquire_owned().await.ok(),
        None => None,
    };
    let t0 = Instant::now();
    let fail = |e: String| {
        let errors = errors.clone();
        let opened = opened.clone();
        async move {
            lock(&errors).add(e.clone());
            if let Some(tx) = opened {
                let _ = tx.send((member, Err(e))).await;
            }
        }
    };
    let conn_no = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut ws: Ws = match tokio::time::timeout(
        ctx.timeout,
        ctx.dialer.open(conn_no, &ctx.tokens[member]),
    )
    .await
    {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return fail(e).await,
        Err(_) => return fail("open-timeout".into()).await,
    };
    ctx.opens.fetch_add(1, Ordering::Relaxed);
    if announce {
        ctx.made(member, true, t0);
    }
    if ws.send(Message::text(ctx.subscribe.clone())).await.is_err() {
        return fail("subscribe-send".into()).await;
    }
    let subscribe_by = t0 + ctx.timeout;
    let mut subscribed = false;
    let mut attempts = 1u32;
    let mut resend_at: Option<Instant> = None;
    let mut closing: Option<Instant> = None;
    let mut told: Vec<Change> = Vec::new();
    let far = || Instant::now() + Duration::from_secs(86_400);
    loop {
        tokio::select! {
            r = &mut close, if closing.is_none() => {
                let now = Instant::now();
                if r.is_ok() && announce {
                    ctx.made(member, false, now);
                }
                ctx.closes.fetch_add(1, Ordering::Relaxed);
                closing = Some(now);
                if ws.close(None).await.is_err() {
                    break;
                }
            }
            _ = stop.changed(), if closing.is_none() => {
                closing = Some(Instant::now());
                if ws.close(None).await.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep_until(resend_at.unwrap_or_else(far)), if resend_at.is_some() => {
                resend_at = None;
                if ws.send(Message::text(ctx.subscribe.clone())).await.is_err() {
                    fail("subscribe-send".into()).await;
                    break;
                }
            }
            () = tokio::time::sleep_until(subscribe_by), if !subscribed && closing.is_none() => {
                fail("subscribe-timeout".into()).await;
                break;
            }
            () = tokio::time::sleep_until(
                closing.map_or_else(far, |c| c + Duration::from_secs(2))
            ), if closing.is_some() => break,
            msg = ws.next() => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => match ctx.read(member, t.as_str(), now, &mut told) {
                        Read::Subscribed if !subscribed => {
                            subscribed = true;
                            permit = None;
                            if let Some(tx) = &opened {
                                let _ = tx.send((member, Ok(t0.elapsed()))).await;
                            }
                        }
                        Read::Error if !subscribed && closing.is_none() => {
                            // E.g. the membership not yet seen by the node: retry a few times.
                            if attempts >= 5 {
                                fail("subscribe-error".into()).await;
                                break;
                            }
                            resend_at = Some(now + Duration::from_millis(200 * u64::from(attempts)));
                            attempts += 1;
                        }
                        _ => {}
                    },
                    Some(Ok(Message::Close(c))) => {
                        if closing.is_none() {
                            lock(&ctx.lost).add(format!(
                                "closed-{}",
                                c.map_or(0, |c| u16::from(c.code))
                            ));
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) => {
                        if closing.is_none() {
                            lock(&ctx.lost).add("ws-error");
                        }
                        break;
                    }
                    None => {
                        if closing.is_none() {
                            lock(&ctx.lost).add("eof");
                        }
                        break;
                    }
                }
            }
        }
    }
    drop(permit);
    if !told.is_empty() {
        lock(&ctx.told).extend(told);
    }
}

// ---------------------------------------------------------------------------
// Server CPU samples during the sign-in burst.
// ---------------------------------------------------------------------------

/// Which processes are the server (and the stack: the server with PostgreSQL and NATS).
#[derive(Clone)]
struct Procs {
    pids: Vec<u32>,
    server: Vec<&'static str>,
    stack: Vec<&'static str>,
    server_label: String,
    stack_label: String,
}

impl Procs {
    fn new(pids: &[u32]) -> Self {
        let server: Vec<&'static str> = if pids.is_empty() {
            SERVER_PROCESSES.to_vec()
        } else {
            Vec::new()
        };
        let stack = [&server[..], BACKING_PROCESSES].concat();
        let (server_label, stack_label) = if pids.is_empty() {
            (server.join(" | "), stack.join(" | "))
        } else {
            (
                format!("--server-pid {pids:?}"),
                format!("--server-pid {pids:?} + {}", BACKING_PROCESSES.join(" | ")),
            )
        };
        Self {
            pids: pids.to_vec(),
            server,
            stack,
            server_label,
            stack_label,
        }
    }

    fn take(&self) -> Sample {
        let scan = ProcScan::take();
        Sample {
            at: Instant::now(),
            server: scan.select(&self.pids, &self.server),
            stack: scan.select(&self.pids, &self.stack),
        }
    }

    /// Server and stack CPU between two samples, per `frames` presence frames.
    fn between(
        &self,
        a: &Sample,
        b: &Sample,
        frames: u64,
    ) -> (Option<ServerCpu>, Option<ServerCpu>) {
        let window = b.at.saturating_duration_since(a.at);
        (
            ServerCpu::between(
                &a.server,
                &b.server,
                window,
                frames,
                self.server_label.clone(),
            ),
            ServerCpu::between(&a.stack, &b.stack, window, frames, self.stack_label.clone()),
        )
    }
}

struct Sample {
    at: Instant,
    server: ProcTimes,
    stack: ProcTimes,
}

/// Samples the server's CPU every [`SAMPLE_EVERY`] on a thread of its own (reading /proc
/// blocks; the sockets' runtime never waits for it).
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    fn start(procs: Procs) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                samples.push(procs.take());
                std::thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        Self { stop, thread }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

/// user_id → member, from the room's member list (member k is `lg{run}_{k}`: the room's
/// creator is 0), once the read models list all `n`.
async fn member_ids(
    target: &Target,
    token: &HeaderValue,
    room: &str,
    run_id: &str,
    n: usize,
) -> anyhow::Result<HashMap<String, u32>> {
    let mut conn = Conn::new(target.clone(), Duration::from_secs(30));
    let prefix = format!("lg{run_id}_");
    let path = format!("/v1/rooms/{room}/members");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = conn
            .get(&path, Some(token))
            .await
            .map_err(|e| anyhow!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(anyhow!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let v: Value = serde_json::from_slice(&body)?;
        let mut ids = HashMap::new();
        for m in v
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(id), Some(k)) = (
                m.get("user_id").and_then(Value::as_str),
                m.get("username")
                    .and_then(Value::as_str)
                    .and_then(|u| u.strip_prefix(&prefix))
                    .and_then(|k| k.parse::<u32>().ok()),
            ) else {
                continue;
            };
            ids.insert(id.to_owned(), k);
        }
        if ids.len() >= n {
            return Ok(ids);
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "the room lists {} of {n} members after 120 s",
                ids.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until no presence frame arrived for `quiet` (counting from `since` at the
/// earliest), or until `deadline`; true when it went quiet.
async fn until_quiet(ctx: &Ctx, since: Instant, quiet: Duration, deadline: Instant) -> bool {
    loop {
        let last = ctx.last_presence().map_or(since, |l| l.max(since));
        let now = Instant::now();
        if now.saturating_duration_since(last) >= quiet {
            return true;
        }
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The member sockets' close handles (`None` while a member's socket is closed).
type Slots = Arc<Mutex<Vec<Option<oneshot::Sender<()>>>>>;

#[derive(Clone)]
struct Common {
    ctx: Arc<Ctx>,
    slots: Slots,
    stop: watch::Receiver<bool>,
    procs: Procs,
}

impl Common {
    /// Spawns the life of a socket of `member`; returns its close handle.
    fn spawn(
        &self,
        member: usize,
        announce: bool,
        gate: Option<Arc<Semaphore>>,
        opened: Option<mpsc::Sender<Opened>>,
        errors: &Arc<Mutex<Errors>>,
    ) -> oneshot::Sender<()> {
        let (tx, rx) = oneshot::channel();
        let life = Life {
            member,
            announce,
            gate,
            opened,
            errors: errors.clone(),
            close: rx,
            stop: self.stop.clone(),
        };
        tokio::spawn(socket_life(self.ctx.clone(), life));
        tx
    }
}

pub async fn measure(args: &PresenceArgs) -> anyhow::Result<PresenceReport> {
    let n = args.members;
    if n < 2 {
        return Err(anyhow!("--members must be at least 2"));
    }
    if !(args.churn_rate.is_finite() && args.churn_rate > 0.0) {
        return Err(anyhow!("--churn-rate must be positive"));
    }
    if let Some(note) = super::connections::raise_nofile(n * 2 + 64) {
        report::say(&note);
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    // The room's creator and n − 1 more users: n members, all with a socket.
    let fx = fanout::setup(&args.url, n - 1, 1).await?;
    let room = fx.rooms[0].clone();
    let tokens: Vec<HeaderValue> = std::iter::once(fx.sender.clone())
        .chain(fx.listeners.iter().cloned())
        .collect();
    let ids = member_ids(&fx.target, &fx.sender, &room, &fx.run_id, n).await?;
    let room_members = ids.len();
    let dialer = Dialer::new(&args.url, !args.no_spread).await?;
    let source_addresses = dialer.source_addresses();
    let ctx = Arc::new(Ctx {
        dialer,
        tokens,
        subscribe: json!({"type": "subscribe", "room_id": room}).to_string(),
        room,
        ids,
        base: Instant::now(),
        timeout: args.timeout,
        next_conn: AtomicUsize::new(0),
        frames: AtomicU64::new(0),
        changes: AtomicU64::new(0),
        online: AtomicU64::new(0),
        offline: AtomicU64::new(0),
        opens: AtomicU64::new(0),
        closes: AtomicU64::new(0),
        error_frames: AtomicU64::new(0),
        unparsed: AtomicU64::new(0),
        unknown_users: AtomicU64::new(0),
        last_presence_us: AtomicU64::new(0),
        frames_by_member: (0..n).map(|_| AtomicU64::new(0)).collect(),
        changes_by_member: (0..n).map(|_| AtomicU64::new(0)).collect(),
        made: Mutex::new(Vec::new()),
        told: Mutex::new(Vec::new()),
        lost: Mutex::new(Errors::default()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let common = Common {
        ctx: ctx.clone(),
        slots: Arc::new(Mutex::new((0..n).map(|_| None).collect())),
        stop: stop_rx,
        procs: Procs::new(&args.server_pid),
    };

    let (sign_in, sign_in_end) = sign_in(args, &common).await?;
    let mut churn = churn_phase(args, &common, "churn", 0).await;
    let control_start = Instant::now();
    let mut control = if args.no_control {
        None
    } else {
        Some(churn_phase(args, &common, "control", churn.sockets_closed as usize).await)
    };
    // Changes told from here on are of the sockets' own closing: not counted.
    let stopped_at = Instant::now();
    let _ = stop_tx.send(true);
    // Let every socket close and hand over what it was told.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let made = std::mem::take(&mut *lock(&ctx.made));
    let told = std::mem::take(&mut *lock(&ctx.told));
    let delays = delays(&made, &told, [sign_in_end, control_start], stopped_at);
    let mut sign_in = sign_in;
    sign_in.latency_online = Latency::of(&delays.hists[0][1]);
    churn.latency_offline = Latency::of(&delays.hists[1][0]);
    churn.latency_online = Latency::of(&delays.hists[1][1]);
    if let Some(c) = control.as_mut() {
        c.latency_offline = Latency::of(&delays.hists[2][0]);
        c.latency_online = Latency::of(&delays.hists[2][1]);
    }
    let marginal = |f: fn(&Churn) -> Option<&ServerCpu>, per: u64| {
        let (a, b) = (f(&churn)?, f(control.as_ref()?)?);
        (per > 0).then(|| (a.cpu_s - b.cpu_s) * 1e6 / per as f64)
    };
    let marginal_us_per_change = marginal(|c| c.server_cpu.as_ref(), churn.changes);
    let marginal_stack_us_per_change = marginal(|c| c.stack_cpu.as_ref(), churn.changes);
    let marginal_us_per_frame = marginal(|c| c.server_cpu.as_ref(), churn.told.frames);
    let sockets_lost = lock(&ctx.lost).clone();
    Ok(PresenceReport {
        scenario: "presence",
        url: args.url.clone(),
        started_at,
        members: n,
        room_members,
        window_hint_ms: args.window_hint_ms,
        source_addresses,
        sign_in,
        churn,
        control,
        marginal_us_per_change,
        marginal_stack_us_per_change,
        marginal_us_per_frame,
        sockets_lost,
        error_frames: ctx.error_frames.load(Ordering::Relaxed),
        unparsed_frames: ctx.unparsed.load(Ordering::Relaxed),
        unknown_users: ctx.unknown_users.load(Ordering::Relaxed),
        unmatched_changes: delays.unmatched,
    })
}

/// Phase 1: every member's socket opens at once; until presence goes quiet.
async fn sign_in(args: &PresenceArgs, common: &Common) -> anyhow::Result<(SignIn, Instant)> {
    let (ctx, n) = (&common.ctx, args.members);
    report::say(&format!(
        "sign-in burst: opening {n} WebSockets ({} at a time) into one room of {n} members",
        args.open_concurrency.max(1)
    ));
    let gate = Arc::new(Semaphore::new(args.open_concurrency.max(1)));
    let errors = Arc::new(Mutex::new(Errors::default()));
    let (opened_tx, opened_rx) = mpsc::channel::<Opened>(1024);
    let cpu0 = CpuSnapshot::take();
    let sampler = Sampler::start(common.procs.clone());
    let first = common.procs.take();
    let t0 = Instant::now();
    {
        let mut slots = lock(&common.slots);
        for (m, slot) in slots.iter_mut().enumerate() {
            *slot = Some(common.spawn(
                m,
                true,
                Some(gate.clone()),
                Some(opened_tx.clone()),
                &errors,
            ));
        }
    }
    drop(opened_tx);
    let opened = fanout::collect_opened(opened_rx, n, "presence sign-in").await;
    let open_done = Instant::now();
    let sockets = opened.iter().filter(|o| o.1.is_ok()).count();
    let open_errors = lock(&errors).clone();
    report::say(&format!(
        "{sockets}/{n} subscribed in {:.1}s (errors: {}); waiting for presence to go quiet for {:.1}s",
        (open_done - t0).as_secs_f64(),
        open_errors.brief(),
        args.quiet.as_secs_f64()
    ));
    let settled = until_quiet(ctx, open_done, args.quiet, t0 + args.settle_timeout).await;
    let last = common.procs.take();
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    let samples = sampler.finish();
    let told = ctx.counts();
    let last_frame = ctx.last_presence().unwrap_or(t0);
    // The first sample at or after the last presence frame.
    let at_last = samples.iter().find(|s| s.at >= last_frame).unwrap_or(&last);
    let (server_cpu, stack_cpu) = common.procs.between(&first, at_last, told.frames);
    let (server_cpu_to_quiet, _) = common.procs.between(&first, &last, told.frames);
    if !settled {
        report::say(&format!(
            "WARNING: presence did not go quiet within {:.0}s",
            args.settle_timeout.as_secs_f64()
        ));
    }
    let per = |c: &Option<ServerCpu>| {
        c.as_ref()
            .and_then(|c| (sockets > 0).then(|| c.cpu_s * 1e6 / sockets as f64))
    };
    Ok((
        SignIn {
            sockets,
            open_errors,
            open_s: (open_done - t0).as_secs_f64(),
            to_last_frame_s: last_frame.saturating_duration_since(t0).as_secs_f64(),
            settled,
            elapsed_s: last.at.saturating_duration_since(t0).as_secs_f64(),
            told,
            frames_per_socket: Spread::of(Ctx::by_member(&ctx.frames_by_member)),
            changes_per_socket: Spread::of(Ctx::by_member(&ctx.changes_by_member)),
            us_per_change: per(&server_cpu),
            stack_us_per_change: per(&stack_cpu),
            server_cpu,
            stack_cpu,
            server_cpu_to_quiet,
            latency_online: Latency::of(&stats::new_histogram()),
            cpu,
        },
        last.at,
    ))
}

/// Phases 2 and 3: `--churn-rate` times a second for `--duration`, a member's socket is
/// closed and re-opened `--reopen-after` later (`churn`), or a second socket of a member
/// opened and closed `--reopen-after` later (`control`). `cursor`: the round robin's start.
async fn churn_phase(
    args: &PresenceArgs,
    common: &Common,
    phase: &'static str,
    cursor: usize,
) -> Churn {
    let (ctx, n) = (&common.ctx, args.members);
    let announce = phase == "churn";
    report::say(&format!(
        "{phase}: {:.0} sockets/s {} for {:.0}s, re-opened/closed {:.0} ms later",
        args.churn_rate,
        if announce {
            "closed (members' only sockets)"
        } else {
            "opened (members' second sockets)"
        },
        args.duration.as_secs_f64(),
        args.reopen_after.as_secs_f64() * 1000.0
    ));
    let errors = Arc::new(Mutex::new(Errors::default()));
    let interval = Duration::from_secs_f64(1.0 / args.churn_rate);
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + args.duration;
    let mut cursor = cursor;
    let mut max_lag = Duration::ZERO;
    let mut pending = Vec::new();
    tokio::time::sleep_until(start).await;
    let cpu0 = CpuSnapshot::take();
    let first = common.procs.take();
    let told0 = ctx.counts();
    let frames0 = Ctx::by_member(&ctx.frames_by_member);
    let (opens0, closes0) = (
        ctx.opens.load(Ordering::Relaxed),
        ctx.closes.load(Ordering::Relaxed),
    );
    for k in 0u32.. {
        let due = start + interval * k;
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(due));
        if announce {
            // The next member whose socket is open: close it, re-open it later.
            let taken = {
                let mut slots = lock(&common.slots);
                (0..n).find_map(|i| {
                    let m = (cursor + i) % n;
                    slots[m].take().map(|tx| (m, tx))
                })
            };
            let Some((m, tx)) = taken else { continue };
            cursor = m + 1;
            let _ = tx.send(());
            let (slots, errors) = (common.slots.clone(), errors.clone());
            let reopen_at = Instant::now() + args.reopen_after;
            let spawn_ctx = common.clone();
            pending.push(tokio::spawn(async move {
                tokio::time::sleep_until(reopen_at).await;
                let tx = spawn_ctx.spawn(m, true, None, None, &errors);
                lock(&slots)[m] = Some(tx);
            }));
        } else {
            let m = cursor % n;
            cursor += 1;
            let tx = common.spawn(m, false, None, None, &errors);
            let close_at = Instant::now() + args.reopen_after;
            pending.push(tokio::spawn(async move {
                tokio::time::sleep_until(close_at).await;
                let _ = tx.send(());
            }));
        }
    }
    tokio::time::sleep_until(end).await;
    let last = common.procs.take();
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    let told = ctx.counts().minus(told0);
    let frames1 = Ctx::by_member(&ctx.frames_by_member);
    let sockets_opened = ctx.opens.load(Ordering::Relaxed) - opens0;
    let sockets_closed = ctx.closes.load(Ordering::Relaxed) - closes0;
    let (offline_changes, online_changes) = {
        let made = lock(&ctx.made);
        let within = |online: bool| {
            made.iter()
                .filter(|(_, o, at)| *o == online && *at >= first.at && *at <= last.at)
                .count() as u64
        };
        (within(false), within(true))
    };
    let changes = offline_changes + online_changes;
    let (server_cpu, stack_cpu) = common.procs.between(&first, &last, told.frames);
    // The last re-opens / closes, then quiet before the next phase.
    for p in pending {
        let _ = p.await;
    }
    let settle_from = Instant::now() + args.timeout.min(Duration::from_secs(2));
    until_quiet(
        ctx,
        settle_from,
        args.quiet,
        settle_from + args.settle_timeout,
    )
    .await;
    let window = last.at.saturating_duration_since(first.at).as_secs_f64();
    let per = |x: f64| (changes > 0).then(|| x / changes as f64);
    let per_cpu = |c: &Option<ServerCpu>| c.as_ref().and_then(|c| per(c.cpu_s * 1e6));
    let empty = Latency::of(&stats::new_histogram());
    Churn {
        phase,
        target_rate_per_s: args.churn_rate,
        duration_s: window,
        reopen_after_ms: args.reopen_after.as_secs_f64() * 1000.0,
        sockets_closed,
        sockets_opened,
        open_errors: lock(&errors).clone(),
        offline_changes,
        online_changes,
        changes,
        changes_per_s: changes as f64 / window.max(1e-9),
        max_schedule_lag_ms: max_lag.as_secs_f64() * 1000.0,
        told,
        frames_per_change: per(told.frames as f64),
        changes_told_per_change: per(told.changes as f64),
        frames_per_socket_per_s: told.frames as f64 / n as f64 / window.max(1e-9),
        frames_per_socket: Spread::of(
            frames1
                .iter()
                .zip(&frames0)
                .map(|(b, a)| b.saturating_sub(*a))
                .collect(),
        ),
        us_per_change: per_cpu(&server_cpu),
        stack_us_per_change: per_cpu(&stack_cpu),
        server_cpu,
        stack_cpu,
        latency_offline: empty.clone(),
        latency_online: empty,
        cpu,
    }
}

/// Change made → told delays, by phase (sign-in, churn, control) and kind (offline, online).
struct Delays {
    hists: [[Histogram<u64>; 2]; 3],
    unmatched: u64,
}

/// Matches every change told before `stopped` to the latest change of that kind made to
/// that member before it was told; the phase is the made change's (`ends`: the sign-in's
/// end and the control's start; the control makes none).
fn delays(made: &[Change], told: &[Change], ends: [Instant; 2], stopped: Instant) -> Delays {
    let mut by_member: HashMap<u32, Vec<(Instant, bool)>> = HashMap::new();
    for (m, online, at) in made {
        by_member.entry(*m).or_default().push((*at, *online));
    }
    for v in by_member.values_mut() {
        v.sort_by_key(|e| e.0);
    }
    let mut d = Delays {
        hists: std::array::from_fn(|_| std::array::from_fn(|_| stats::new_histogram())),
        unmatched: 0,
    };
    for (m, online, at) in told.iter().filter(|t| t.2 < stopped) {
        let Some(e) = by_member.get(m).and_then(|v| {
            v.iter()
                .rev()
                .find(|(t, o)| o == online && t <= at)
                .map(|e| e.0)
        }) else {
            d.unmatched += 1;
            continue;
        };
        let phase = if e < ends[0] {
            0
        } else if e < ends[1] {
            1
        } else {
            2
        };
        stats::record(
            &mut d.hists[phase][usize::from(*online)],
            at.saturating_duration_since(e),
        );
    }
    d
}

// ---------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------

fn opt(x: Option<f64>, f: fn(f64) -> String) -> String {
    x.map_or("-".into(), f)
}

/// `p50/p99` in ms, or `-` when nothing was measured.
fn p50_p99(l: &Latency) -> String {
    if l.count == 0 {
        return "-".into();
    }
    format!("{:.0}/{:.0}", l.p50_ms, l.p99_ms)
}

fn cpu_s(c: &Option<ServerCpu>) -> String {
    c.as_ref().map_or("-".into(), |c| {
        format!("{:.2} ({:.2} cores)", c.cpu_s, c.cores)
    })
}

pub fn tables(r: &PresenceReport) -> (Table, Table) {
    let window = r
        .window_hint_ms
        .map_or(String::new(), |w| format!(", presence window {w} ms"));
    let s = &r.sign_in;
    let mut burst = Table::new(
        format!(
            "presence sign-in burst via {}: {} sockets into one room of {} members{window}",
            r.url, s.sockets, r.room_members
        ),
        &[
            "opened",
            "open s",
            "to last frame s",
            "frames",
            "changes told",
            "frames/socket min/med/max",
            "changes/socket min/med/max",
            "server CPU s",
            "CPU/sign-in µs",
            "CPU/frame µs",
            "+ PG, NATS CPU/sign-in µs",
            "told p50 ms",
            "told p99 ms",
        ],
    );
    burst.row(vec![
        format!("{}{}", s.sockets, if s.settled { "" } else { " UNSETTLED" }),
        f2(s.open_s),
        f2(s.to_last_frame_s),
        s.told.frames.to_string(),
        s.told.changes.to_string(),
        s.frames_per_socket.brief(),
        s.changes_per_socket.brief(),
        cpu_s(&s.server_cpu),
        opt(s.us_per_change, f0),
        opt(s.server_cpu.as_ref().and_then(|c| c.us_per_delivery), f2),
        opt(s.stack_us_per_change, f0),
        f2(s.latency_online.p50_ms),
        f2(s.latency_online.p99_ms),
    ]);
    let mut churn = Table::new(
        format!(
            "presence churn via {}: {} member sockets in one room, {:.0} closes/s, re-opened {:.0} ms later{window}",
            r.url, r.members, r.churn.target_rate_per_s, r.churn.reopen_after_ms
        ),
        &[
            "phase",
            "changes made (off+on)",
            "changes/s",
            "frames",
            "changes told (off/on)",
            "frames/change",
            "frames/socket/s",
            "server CPU s",
            "CPU/change µs",
            "CPU/frame µs",
            "+ PG, NATS CPU/change µs",
            "offline told p50/p99 ms",
            "online told p50/p99 ms",
        ],
    );
    for c in std::iter::once(&r.churn).chain(&r.control) {
        churn.row(vec![
            c.phase.into(),
            format!("{} ({}+{})", c.changes, c.offline_changes, c.online_changes),
            f2(c.changes_per_s),
            c.told.frames.to_string(),
            format!("{} ({}/{})", c.told.changes, c.told.offline, c.told.online),
            opt(c.frames_per_change, f2),
            f2(c.frames_per_socket_per_s),
            cpu_s(&c.server_cpu),
            opt(c.us_per_change, f0),
            opt(c.server_cpu.as_ref().and_then(|c| c.us_per_delivery), f2),
            opt(c.stack_us_per_change, f0),
            p50_p99(&c.latency_offline),
            p50_p99(&c.latency_online),
        ]);
    }
    (burst, churn)
}

pub fn emit(r: &PresenceReport, out: &Path) -> anyhow::Result<()> {
    let (burst, churn) = tables(r);
    burst.print();
    churn.print();
    if let Some(c) = &r.control {
        report::say(&format!(
            "control: {} sockets opened, {} closed, {} presence frames in the window",
            c.sockets_opened, c.sockets_closed, c.told.frames
        ));
    }
    report::say(&format!(
        "churn: {} sockets closed, {} opened in the window; max schedule lag {:.1} ms; open errors {}",
        r.churn.sockets_closed,
        r.churn.sockets_opened,
        r.churn.max_schedule_lag_ms,
        r.churn.open_errors.brief()
    ));
    if let Some(m) = r.marginal_us_per_change {
        report::say(&format!(
            "presence's own cost (churn − control): server {m:.0} µs per change, {} µs per \
             change with PG and NATS, {} µs per frame",
            opt(r.marginal_stack_us_per_change, f0),
            opt(r.marginal_us_per_frame, f2),
        ));
    }
    report::say(&format!(
        "sign-in: opened in {:.1}s (errors {}), last presence frame at {:.2}s; server CPU to \
         the quiet end ({:.1}s): {}",
        r.sign_in.open_s,
        r.sign_in.open_errors.brief(),
        r.sign_in.to_last_frame_s,
        r.sign_in.elapsed_s,
        cpu_s(&r.sign_in.server_cpu_to_quiet)
    ));
    for (name, c) in [
        ("sign-in", &r.sign_in.cpu),
        ("churn", &r.churn.cpu),
        ("control", &r.control.as_ref().and_then(|c| c.cpu.clone())),
    ] {
        if let Some(c) = c {
            report::say(&format!("machine CPU, {name}: {}", c.brief()));
        }
    }
    report::say(&format!(
        "sockets lost {}; error frames {}; unparsed frames {}; changes of unknown users {}; \
         changes told matching no change made {}",
        r.sockets_lost.brief(),
        r.error_frames,
        r.unparsed_frames,
        r.unknown_users,
        r.unmatched_changes
    ));
    let json = report::write_json(out, "presence.json", r)?;
    report::say(&format!("wrote {}", json.display()));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn told(text: &str) -> Option<Vec<(String, bool)>> {
        let f: Frame<'_> = serde_json::from_str(text).ok()?;
        changes_of(&f).map(|v| v.into_iter().map(|(u, o)| (u.to_owned(), o)).collect())
    }

    #[test]
    fn presence_frames_tell_one_change_or_all_of_changes() {
        let one = r#"{"type":"presence","user_id":"a","status":"offline","last_seen":"2026-01-01T00:00:00Z"}"#;
        assert_eq!(told(one), Some(vec![("a".into(), false)]));
        let several = json!({"type": "presence", "user_id": "a", "status": "online", "last_seen": "t",
            "changes": [{"user_id": "a", "status": "online", "last_seen": "t"},
                        {"user_id": "b", "status": "offline", "last_seen": "t"}]});
        assert_eq!(
            told(&several.to_string()),
            Some(vec![("a".into(), true), ("b".into(), false)])
        );
        assert_eq!(
            told(r#"{"type":"subscribed","room_id":"r","version":1}"#),
            None
        );
        assert_eq!(told(r#"{"type":"presence"}"#), None);
    }

    #[test]
    fn spreads_and_delays() {
        let s = Spread::of(vec![5, 1, 3]);
        assert_eq!((s.min, s.median, s.max), (1, 3, 5));
        assert!((s.mean - 3.0).abs() < 1e-9);
        let t0 = Instant::now();
        let ms = |x: u64| t0 + Duration::from_millis(x);
        // Member 1: online at 0 (sign-in), offline at 100 and online at 600 (churn).
        let made = vec![(1, true, ms(0)), (1, false, ms(100)), (1, true, ms(600))];
        let told = vec![
            (1, true, ms(20)),
            (1, false, ms(150)),
            (1, true, ms(700)),
            (2, true, ms(30)),
        ];
        let mut told = told;
        // Told after the stop: ignored.
        told.push((1, false, ms(20_000)));
        let d = delays(&made, &told, [ms(50), ms(10_000)], ms(15_000));
        assert_eq!(d.unmatched, 1);
        assert_eq!(d.hists[0][1].len(), 1);
        assert_eq!(d.hists[1][0].len(), 1);
        assert_eq!(d.hists[1][1].len(), 1);
        assert!((d.hists[1][1].max() as i64 - 100_000).abs() < 200);
    }
}
