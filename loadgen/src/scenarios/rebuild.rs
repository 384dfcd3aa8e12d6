//! `rebuild`: a blue/green rebuild under live traffic, and whether anyone noticed.
//!
//! 1. Optionally `--fill-events N` of the `mixed` workload first (same driver, same shape
//!    options), so the log has something to rebuild.
//! 2. Traffic set-up: `--traffic-users` users and one sender; the sender creates
//!    `--traffic-rooms` public rooms, every user joins them, and each room gets a first
//!    message holding every word of the vocabulary. The rooms of the fill that have
//!    messages (read as their owner) and these rooms are the rooms "known to have
//!    messages"; the first read of each waits (`min_position`) until the read models hold
//!    them.
//! 3. `--ws-clients` WebSockets (user i mod U) subscribe to every traffic room (with
//!    `"epoch": n` when the REST answers carry `Chat-Epoch`; a server that rejects the
//!    field gets the plain subscribe) and record every `message_sent`, `resync` and
//!    `subscribed` frame.
//! 4. Live traffic, each an open loop on a fixed schedule: sends at `--send-rate` to the
//!    traffic rooms (round robin), history reads at `--read-rate`
//!    (`GET /v1/rooms/{id}/messages`, no `min_position`: what is served right now),
//!    searches at `--search-rate` (`GET /v1/search/messages?q=<word>`, as a member of the
//!    traffic rooms, so every word has hits). Latency is measured from the scheduled time.
//! 5. After `--baseline` of traffic, `--rebuild-cmd` runs (`sh -c`, same environment; its
//!    stdout and stderr go to `rebuild-cmd.stdout` / `.stderr` in the output dir); the
//!    traffic goes on until it exits and `--tail` more.
//! 6. Nothing lost: every WebSocket client that got a `resync` reloads each such room's
//!    history over REST (forwards from before the run's first message, with
//!    `min_position` = the last send's position); the union of what it received live and
//!    what it reloaded must hold every message sent to the room during the run. A client
//!    without a resync must have received every one live. With `--reload-all` every
//!    client reloads every room, which also checks that the history served after the
//!    rebuild holds every message sent during it.
//!
//! Each sample is counted in the window of its scheduled time: `before` (the baseline),
//! `during` (the rebuild command running) and `after`. An error is any non-2xx or
//! transport error; an empty history is a 200 without messages for a room known to have
//! messages; an empty search is a 200 without hits for a vocabulary word. The run exits
//! non-zero when there were errors (traffic, WebSocket or fill), empty histories, empty
//! searches, missing messages or reloaded histories without a sent message, or when the
//! rebuild command failed.

use super::fanout::{Dialer, Ws};
use super::mixed::{self, Rng, Shape, User, VOCABULARY, error_code, snippet};
use crate::http::{Conn, Target, field, post};
use crate::report::{self, Table, f0, f2};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, Slots, parse_duration};
use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hyper::Method;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const EPOCH_HEADER: &str = "chat-epoch";

#[derive(clap::Args, Debug, Clone)]
pub struct RebuildArgs {
    /// Base URL of the platform (the single node).
    #[arg(long, alias = "base-url", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The rebuild, run with `sh -c` in loadgen's environment,
    /// e.g. "target/release/chat rebuild --all".
    #[arg(long)]
    pub rebuild_cmd: String,
    /// Events of the mixed workload appended first (0: none).
    #[arg(long, default_value_t = 0)]
    pub fill_events: u64,
    #[command(flatten)]
    pub shape: Shape,
    /// Messages per second sent to the traffic rooms.
    #[arg(long, default_value_t = 50.0)]
    pub send_rate: f64,
    /// History reads per second.
    #[arg(long, default_value_t = 50.0)]
    pub read_rate: f64,
    /// Searches per second.
    #[arg(long, default_value_t = 10.0)]
    pub search_rate: f64,
    /// WebSocket clients, each subscribed to every traffic room.
    #[arg(long, default_value_t = 20)]
    pub ws_clients: usize,
    /// Public rooms the live traffic sends to.
    #[arg(long, default_value_t = 4)]
    pub traffic_rooms: usize,
    /// Users reading, searching and listening (members of every traffic room).
    #[arg(long, default_value_t = 4)]
    pub traffic_users: usize,
    /// HTTP connections for each of sends, reads and searches.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Traffic before the rebuild starts (the baseline window).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub baseline: Duration,
    /// Traffic after the rebuild command exited.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub tail: Duration,
    /// Every WebSocket client reloads every room after the run, not only the rooms it
    /// got a `resync` for (checks that the history holds every message sent).
    #[arg(long)]
    pub reload_all: bool,
    /// How long WebSockets keep listening after the last send.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub drain: Duration,
}

const WINDOWS: [&str; 3] = ["before", "during", "after"];
const MAX_EXAMPLES: usize = 20;

// ---------------------------------------------------------------------------
// What the traffic counts, per window.
// ---------------------------------------------------------------------------

struct Tally {
    reads: Histogram<u64>,
    read_errors: Errors,
    empty_histories: u64,
    searches: Histogram<u64>,
    search_errors: Errors,
    empty_searches: u64,
    sends: Histogram<u64>,
    send_errors: Errors,
    /// `Chat-Epoch` values seen on reads and searches ("not seen" when absent).
    epochs: BTreeMap<String, u64>,
    examples: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Self {
            reads: stats::new_histogram(),
            read_errors: Errors::default(),
            empty_histories: 0,
            searches: stats::new_histogram(),
            search_errors: Errors::default(),
            empty_searches: 0,
            sends: stats::new_histogram(),
            send_errors: Errors::default(),
            epochs: BTreeMap::new(),
            examples: Vec::new(),
        }
    }

    fn example(&mut self, window: usize, e: String) {
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(format!("[{}] {e}", WINDOWS[window]));
        }
    }

    fn epoch(&mut self, e: Option<i64>) {
        let key = e.map_or_else(|| "not seen".to_owned(), |e| e.to_string());
        *self.epochs.entry(key).or_default() += 1;
    }

    fn merge(&mut self, o: &Tally) {
        let _ = self.reads.add(&o.reads);
        self.read_errors.merge(&o.read_errors);
        self.empty_histories += o.empty_histories;
        let _ = self.searches.add(&o.searches);
        self.search_errors.merge(&o.search_errors);
        self.empty_searches += o.empty_searches;
        let _ = self.sends.add(&o.sends);
        self.send_errors.merge(&o.send_errors);
        for (k, v) in &o.epochs {
            *self.epochs.entry(k.clone()).or_default() += v;
        }
        for e in &o.examples {
            if self.examples.len() < MAX_EXAMPLES {
                self.examples.push(e.clone());
            }
        }
    }
}

type Tallies = [Tally; 3];

fn tallies() -> Tallies {
    [Tally::new(), Tally::new(), Tally::new()]
}

/// One accepted send of the live traffic.
#[derive(Clone, Debug)]
struct Sent {
    room: usize,
    id: String,
    seq: u64,
    position: i64,
}

/// A room whose history is read, and who reads it.
struct ReadTarget {
    room_id: String,
    user: Arc<User>,
}

/// Shared state of the traffic tasks.
struct Traffic {
    target: Target,
    timeout: Duration,
    /// 0 before, 1 during, 2 after the rebuild.
    window: AtomicU8,
    stop: AtomicBool,
    sender: Arc<User>,
    listeners: Vec<Arc<User>>,
    rooms: Vec<String>,
    reads: Vec<ReadTarget>,
    run_id: String,
}

impl Traffic {
    fn window(&self) -> usize {
        usize::from(self.window.load(Ordering::Relaxed)).min(2)
    }
}

// ---------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct WindowReport {
    pub window: &'static str,
    pub seconds: f64,
    pub reads: Latency,
    pub read_errors: Errors,
    pub empty_histories: u64,
    pub searches: Latency,
    pub search_errors: Errors,
    pub empty_searches: u64,
    pub sends_accepted: u64,
    pub send_latency: Latency,
    pub send_errors: Errors,
    /// `Chat-Epoch` values on reads and searches, with how often each was seen.
    pub epochs: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RebuiltLine {
    pub projection: String,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub epoch: i64,
    pub checkpoint: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RebuildCmdReport {
    pub command: String,
    pub exit_status: String,
    pub success: bool,
    pub seconds: f64,
    /// Every stdout line.
    pub stdout: Vec<String>,
    /// The `rebuilt …` lines, parsed.
    pub rebuilt: Vec<RebuiltLine>,
    pub stdout_file: String,
    pub stderr_file: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct WsReport {
    pub clients: usize,
    pub rooms_per_client: usize,
    pub subscribed: usize,
    pub open_errors: Errors,
    /// "sent", "rejected by the server (sent without)", or "not sent (no Chat-Epoch seen)".
    pub subscribe_epoch: String,
    /// `epoch` of the `subscribed` frames ("not seen" when absent), with counts.
    pub subscribed_epochs: BTreeMap<String, u64>,
    /// `resync` frames by reason, over every client and room.
    pub resyncs_by_reason: BTreeMap<String, u64>,
    /// `resync` frames with reason `epoch` per client (index order).
    pub epoch_resyncs_per_client: Vec<u64>,
    pub clients_with_resync: usize,
    pub message_frames: u64,
    pub duplicate_frames: u64,
    /// `error` frames after subscribing, and sockets closed or failed during the run.
    pub frame_errors: Errors,
    pub sockets_lost: Errors,
    /// Messages sent to a client's rooms during the run (Σ over clients).
    pub expected: u64,
    /// Of those, missing from the live frames of clients that got no resync.
    pub missing_without_resync: u64,
    /// Of those, missing from live frames ∪ reloaded history of clients that got one.
    pub missing_after_reload: u64,
    pub missing: u64,
    /// Reloads done (rooms with a resync, or all with `--reload-all`), and sent messages
    /// absent from a reloaded history (whether or not the client had them live).
    pub reloads: u64,
    pub reload_errors: Errors,
    pub history_missing: u64,
    pub missing_examples: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RebuildReport {
    pub scenario: &'static str,
    pub url: String,
    pub started_at: String,
    pub fill: Option<mixed::MixedReport>,
    pub send_rate: f64,
    pub read_rate: f64,
    pub search_rate: f64,
    pub traffic_rooms: usize,
    pub rooms_read: usize,
    pub windows: Vec<WindowReport>,
    pub rebuild: RebuildCmdReport,
    /// The highest `Chat-Epoch` seen before the rebuild and the ones seen after it.
    pub epoch_before: String,
    pub epoch_after: String,
    pub ws: WsReport,
    pub sends_accepted: u64,
    pub errors: u64,
    pub empty_histories: u64,
    pub empty_searches: u64,
    pub error_examples: Vec<String>,
    pub cpu_during: Option<CpuUsage>,
    pub passed: bool,
    pub failures: Vec<String>,
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

pub async fn run(args: &RebuildArgs, out: &Path) -> anyhow::Result<RebuildReport> {
    for (name, rate) in [
        ("--send-rate", args.send_rate),
        ("--read-rate", args.read_rate),
        ("--search-rate", args.search_rate),
    ] {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(anyhow!("{name} must be positive"));
        }
    }
    if args.traffic_rooms == 0 || args.traffic_users == 0 || args.connections == 0 {
        return Err(anyhow!(
            "--traffic-rooms, --traffic-users and --connections must be positive"
        ));
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    let target = Target::parse(&args.url)?;

    // 1. The fill.
    let mut fill = None;
    let mut reads = Vec::new();
    let mut fill_position = 0;
    if args.fill_events > 0 {
        let (r, world) = mixed::drive(&args.url, args.fill_events, &args.shape).await?;
        mixed::emit(&r, out, "rebuild-fill")?;
        fill_position = world.last_position;
        for room in world.rooms.iter().filter(|r| !r.messages.is_empty()) {
            reads.push(ReadTarget {
                room_id: room.id.clone(),
                user: world.users[room.owner].clone(),
            });
        }
        fill = Some(r);
    }

    // 2. The traffic's users and rooms.
    let traffic = Arc::new(setup(args, target, reads, fill_position).await?);

    // 3. WebSockets.
    let mut conn = Conn::new(traffic.target.clone(), args.shape.timeout);
    let epoch_hint = {
        let tok = traffic.listeners[0].bearer(&mut conn).await?;
        let path = format!("/v1/rooms/{}/messages?limit=1", traffic.rooms[0]);
        conn.call(Method::GET, &path, Some(&tok), None)
            .await
            .ok()
            .and_then(|r| r.header_i64(EPOCH_HEADER))
    };
    report::say(&format!(
        "rebuild: Chat-Epoch now: {}",
        epoch_hint.map_or("not seen".into(), |e| e.to_string())
    ));
    let dialer = Dialer::new(&args.url, false).await?;
    let (stop_ws_tx, stop_ws_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel::<Result<bool, String>>(args.ws_clients + 1);
    let mut sockets = Vec::with_capacity(args.ws_clients);
    for i in 0..args.ws_clients {
        let user = traffic.listeners[i % traffic.listeners.len()].clone();
        let rooms = traffic.rooms.clone();
        let (dialer, ready_tx, stop) = (dialer.clone(), ready_tx.clone(), stop_ws_rx.clone());
        let timeout = args.shape.timeout;
        let target = traffic.target.clone();
        sockets.push(tokio::spawn(async move {
            listen(
                i, dialer, target, user, rooms, epoch_hint, timeout, ready_tx, stop,
            )
            .await
        }));
    }
    drop(ready_tx);
    let mut open_errors = Errors::default();
    let mut subscribed = 0;
    let mut epoch_rejected = false;
    while let Some(r) = ready_rx.recv().await {
        match r {
            Ok(rejected) => {
                subscribed += 1;
                epoch_rejected |= rejected;
            }
            Err(e) => open_errors.add(e),
        }
    }
    report::say(&format!(
        "rebuild: {subscribed}/{} WebSockets subscribed to {} rooms each (errors: {})",
        args.ws_clients,
        traffic.rooms.len(),
        open_errors.brief()
    ));

    // 4. Traffic.
    let start = Instant::now() + Duration::from_millis(200);
    let mut senders = Vec::new();
    let mut others = Vec::new();
    let send_slots = Slots::new(start, args.send_rate);
    let read_slots = Slots::new(start, args.read_rate);
    let search_slots = Slots::new(start, args.search_rate);
    for c in 0..args.connections {
        senders.push(tokio::spawn(send_loop(
            traffic.clone(),
            send_slots.clone(),
            c,
        )));
        others.push(tokio::spawn(read_loop(traffic.clone(), read_slots.clone())));
        others.push(tokio::spawn(search_loop(
            traffic.clone(),
            search_slots.clone(),
        )));
    }
    report::say(&format!(
        "rebuild: traffic started ({:.0} sends/s, {:.0} reads/s over {} rooms, {:.0} searches/s); \
         baseline {:.0}s",
        args.send_rate,
        args.read_rate,
        traffic.reads.len(),
        args.search_rate,
        args.baseline.as_secs_f64()
    ));
    tokio::time::sleep_until(start + args.baseline).await;

    // 5. The rebuild.
    traffic.window.store(1, Ordering::Relaxed);
    let cpu0 = CpuSnapshot::take();
    report::say(&format!("rebuild: running `{}`", args.rebuild_cmd));
    let rebuild = run_rebuild(&args.rebuild_cmd, out).await?;
    let cpu_during = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    traffic.window.store(2, Ordering::Relaxed);
    report::say(&format!(
        "rebuild: the command exited ({}) after {:.1}s; tail {:.0}s",
        rebuild.exit_status,
        rebuild.seconds,
        args.tail.as_secs_f64()
    ));
    tokio::time::sleep(args.tail).await;
    traffic.stop.store(true, Ordering::Relaxed);

    let mut all: Tallies = tallies();
    let mut sent: Vec<Sent> = Vec::new();
    for t in senders {
        let (tal, s) = t.await.context("a sender task failed")?;
        merge_tallies(&mut all, &tal);
        sent.extend(s);
    }
    for t in others {
        let tal = t.await.context("a reader task failed")?;
        merge_tallies(&mut all, &tal);
    }
    tokio::time::sleep(args.drain).await;
    let _ = stop_ws_tx.send(true);
    let mut listened = Vec::with_capacity(sockets.len());
    for s in sockets {
        listened.push(s.await.context("a WebSocket task failed")?);
    }

    // 6. Nothing lost.
    let ws = verify(
        &traffic,
        &sent,
        listened,
        args,
        open_errors,
        epoch_hint,
        epoch_rejected,
    )
    .await;

    // The report.
    let seconds = [
        args.baseline.as_secs_f64(),
        rebuild.seconds,
        args.tail.as_secs_f64(),
    ];
    let windows: Vec<WindowReport> = (0..3)
        .map(|w| {
            let t = &all[w];
            WindowReport {
                window: WINDOWS[w],
                seconds: seconds[w],
                reads: Latency::of(&t.reads),
                read_errors: t.read_errors.clone(),
                empty_histories: t.empty_histories,
                searches: Latency::of(&t.searches),
                search_errors: t.search_errors.clone(),
                empty_searches: t.empty_searches,
                sends_accepted: t.sends.len(),
                send_latency: Latency::of(&t.sends),
                send_errors: t.send_errors.clone(),
                epochs: t.epochs.clone(),
            }
        })
        .collect();
    let errors: u64 = all
        .iter()
        .map(|t| t.read_errors.total() + t.search_errors.total() + t.send_errors.total())
        .sum();
    let empty_histories: u64 = all.iter().map(|t| t.empty_histories).sum();
    let empty_searches: u64 = all.iter().map(|t| t.empty_searches).sum();
    let mut error_examples: Vec<String> = all.iter().flat_map(|t| t.examples.clone()).collect();
    error_examples.truncate(MAX_EXAMPLES);
    let epochs_of = |t: &Tally| -> Vec<i64> {
        t.epochs
            .keys()
            .filter_map(|k| k.parse::<i64>().ok())
            .collect()
    };
    let epoch_before = epochs_of(&all[0])
        .into_iter()
        .max()
        .map_or("not seen".to_owned(), |e| e.to_string());
    let after = epochs_of(&all[2]);
    let epoch_after = if after.is_empty() {
        "not seen".to_owned()
    } else {
        after
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut failures = Vec::new();
    if errors > 0 {
        failures.push(format!("{errors} traffic errors"));
    }
    if empty_histories > 0 {
        failures.push(format!("{empty_histories} empty histories"));
    }
    if empty_searches > 0 {
        failures.push(format!("{empty_searches} searches without hits"));
    }
    if ws.missing > 0 {
        failures.push(format!("{} messages missing on WebSockets", ws.missing));
    }
    let ws_errors = ws.frame_errors.total() + ws.sockets_lost.total() + ws.open_errors.total();
    if ws_errors > 0 {
        failures.push(format!("{ws_errors} WebSocket errors"));
    }
    if ws.history_missing > 0 {
        failures.push(format!(
            "{} sent messages absent from reloaded histories",
            ws.history_missing
        ));
    }
    if ws.reload_errors.total() > 0 {
        failures.push(format!("{} reload errors", ws.reload_errors.total()));
    }
    if let Some(f) = &fill
        && f.error_total > 0
    {
        failures.push(format!("{} errors in the fill", f.error_total));
    }
    if !rebuild.success {
        failures.push(format!(
            "the rebuild command failed ({})",
            rebuild.exit_status
        ));
    }
    let report = RebuildReport {
        scenario: "rebuild",
        url: args.url.clone(),
        started_at,
        fill,
        send_rate: args.send_rate,
        read_rate: args.read_rate,
        search_rate: args.search_rate,
        traffic_rooms: traffic.rooms.len(),
        rooms_read: traffic.reads.len(),
        windows,
        rebuild,
        epoch_before,
        epoch_after,
        ws,
        sends_accepted: sent.len() as u64,
        errors,
        empty_histories,
        empty_searches,
        error_examples,
        cpu_during,
        passed: failures.is_empty(),
        failures,
    };
    emit(&report, out)?;
    if !report.passed {
        return Err(anyhow!("rebuild: {}", report.failures.join("; ")));
    }
    Ok(report)
}

fn merge_tallies(all: &mut Tallies, t: &Tallies) {
    for (a, b) in all.iter_mut().zip(t) {
        a.merge(b);
    }
}

/// Registers the traffic's users and sender, creates and joins the rooms, seeds each with
/// every vocabulary word and waits until the read models show every room read.
async fn setup(
    args: &RebuildArgs,
    target: Target,
    mut reads: Vec<ReadTarget>,
    fill_position: i64,
) -> anyhow::Result<Traffic> {
    let mut conn = Conn::new(
        target.clone(),
        args.shape.timeout.max(Duration::from_secs(30)),
    );
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    report::say(&format!(
        "rebuild: traffic set-up: {} users, {} rooms (run {run_id})",
        args.traffic_users + 1,
        args.traffic_rooms
    ));
    let sender = Arc::new(User::register(&mut conn, format!("rb{run_id}_s")).await?);
    let mut listeners = Vec::new();
    for u in 0..args.traffic_users {
        listeners.push(Arc::new(
            User::register(&mut conn, format!("rb{run_id}_{u}")).await?,
        ));
    }
    let mut rooms = Vec::new();
    let mut last = fill_position;
    let all_words = VOCABULARY.join(" ");
    for r in 0..args.traffic_rooms {
        let tok = sender.bearer(&mut conn).await?;
        let v = post(
            &mut conn,
            "/v1/rooms",
            Some(&tok),
            &json!({"name": format!("rebuild {run_id} {r}"), "visibility": "public"}),
        )
        .await?;
        let room = field(&v, "room_id")?;
        for l in &listeners {
            let tok = l.bearer(&mut conn).await?;
            post(
                &mut conn,
                &format!("/v1/rooms/{room}/join"),
                Some(&tok),
                &json!({}),
            )
            .await?;
        }
        let v = post(
            &mut conn,
            &format!("/v1/rooms/{room}/messages"),
            Some(&tok),
            &json!({"client_msg_id": format!("{run_id}-seed-{r}"), "body": all_words}),
        )
        .await?;
        last = last.max(v.get("position").and_then(Value::as_i64).unwrap_or(0));
        rooms.push(room);
    }
    for (i, room) in rooms.iter().enumerate() {
        reads.push(ReadTarget {
            room_id: room.clone(),
            user: listeners[i % listeners.len()].clone(),
        });
    }
    // Every room read has messages in the read models from here on.
    for t in &reads {
        let tok = t.user.bearer(&mut conn).await?;
        let path = format!(
            "/v1/rooms/{}/messages?limit=1&min_position={last}",
            t.room_id
        );
        let r = conn
            .call(Method::GET, &path, Some(&tok), None)
            .await
            .map_err(|e| anyhow!("GET {path}: {e}"))?;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let n = v["messages"].as_array().map_or(0, Vec::len);
        if !r.status.is_success() || n == 0 {
            return Err(anyhow!(
                "GET {path}: {} with {n} messages before the traffic started: {}",
                r.status,
                snippet(&r.body)
            ));
        }
    }
    Ok(Traffic {
        target,
        timeout: args.shape.timeout,
        window: AtomicU8::new(0),
        stop: AtomicBool::new(false),
        sender,
        listeners,
        rooms,
        reads,
        run_id,
    })
}

/// Takes slots until told to stop; returns the slot number and its window, after
/// sleeping until it is due.
async fn next_slot(t: &Traffic, slots: &Slots) -> Option<(u64, Instant, usize)> {
    let (k, due) = slots.take();
    tokio::time::sleep_until(due).await;
    if t.stop.load(Ordering::Relaxed) {
        return None;
    }
    Some((k, due, t.window()))
}

fn key(status: Option<hyper::StatusCode>, kind: &str, body: &[u8]) -> String {
    match status {
        Some(s) => format!("{} {}", s.as_u16(), error_code(body)),
        None => kind.to_owned(),
    }
}

async fn send_loop(t: Arc<Traffic>, slots: Slots, c: usize) -> (Tallies, Vec<Sent>) {
    let mut tal = tallies();
    let mut sent = Vec::new();
    let mut conn = Conn::new(t.target.clone(), t.timeout);
    let mut rng = Rng::new(c as u64, 77);
    let mut n = 0u64;
    while let Some((k, due, w)) = next_slot(&t, &slots).await {
        let room = (k % t.rooms.len() as u64) as usize;
        n += 1;
        let words = 3 + rng.below(8);
        let body = json!({
            "client_msg_id": format!("{}-t{c}-{n}", t.run_id),
            "body": format!("{} live", rng.words(words)),
        });
        let path = format!("/v1/rooms/{}/messages", t.rooms[room]);
        let tok = match t.sender.bearer(&mut conn).await {
            Ok(tok) => tok,
            Err(e) => {
                tal[w].send_errors.add("refresh");
                tal[w].example(w, format!("send: {e:#}"));
                continue;
            }
        };
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        match conn
            .call(Method::POST, &path, Some(&tok), Some(bytes))
            .await
        {
            Ok(r) if r.status.is_success() => {
                stats::record(&mut tal[w].sends, due.elapsed());
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                sent.push(Sent {
                    room,
                    id: v["message_id"].as_str().unwrap_or_default().to_owned(),
                    seq: v["seq"].as_u64().unwrap_or(0),
                    position: v["position"].as_i64().unwrap_or(0),
                });
            }
            Ok(r) => {
                tal[w].send_errors.add(key(Some(r.status), "", &r.body));
                tal[w].example(
                    w,
                    format!("POST {path} → {}: {}", r.status.as_u16(), snippet(&r.body)),
                );
            }
            Err(e) => {
                tal[w].send_errors.add(e.kind());
                tal[w].example(w, format!("POST {path} → {e}"));
            }
        }
    }
    (tal, sent)
}

async fn read_loop(t: Arc<Traffic>, slots: Slots) -> Tallies {
    let mut tal = tallies();
    let mut conn = Conn::new(t.target.clone(), t.timeout);
    while let Some((k, due, w)) = next_slot(&t, &slots).await {
        let target = &t.reads[(k % t.reads.len() as u64) as usize];
        let path = format!("/v1/rooms/{}/messages", target.room_id);
        let tok = match target.user.bearer(&mut conn).await {
            Ok(tok) => tok,
            Err(e) => {
                tal[w].read_errors.add("refresh");
                tal[w].example(w, format!("read: {e:#}"));
                continue;
            }
        };
        match conn.call(Method::GET, &path, Some(&tok), None).await {
            Ok(r) if r.status.is_success() => {
                stats::record(&mut tal[w].reads, due.elapsed());
                tal[w].epoch(r.header_i64(EPOCH_HEADER));
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if v["messages"].as_array().is_none_or(Vec::is_empty) {
                    tal[w].empty_histories += 1;
                    tal[w].example(
                        w,
                        format!("GET {path} → 200 without messages: {}", snippet(&r.body)),
                    );
                }
            }
            Ok(r) => {
                tal[w].read_errors.add(key(Some(r.status), "", &r.body));
                tal[w].example(
                    w,
                    format!("GET {path} → {}: {}", r.status.as_u16(), snippet(&r.body)),
                );
            }
            Err(e) => {
                tal[w].read_errors.add(e.kind());
                tal[w].example(w, format!("GET {path} → {e}"));
            }
        }
    }
    tal
}

async fn search_loop(t: Arc<Traffic>, slots: Slots) -> Tallies {
    let mut tal = tallies();
    let mut conn = Conn::new(t.target.clone(), t.timeout);
    while let Some((k, due, w)) = next_slot(&t, &slots).await {
        let word = VOCABULARY[(k % VOCABULARY.len() as u64) as usize];
        let user = &t.listeners[(k % t.listeners.len() as u64) as usize];
        let path = format!("/v1/search/messages?q={word}&limit=20");
        let tok = match user.bearer(&mut conn).await {
            Ok(tok) => tok,
            Err(e) => {
                tal[w].search_errors.add("refresh");
                tal[w].example(w, format!("search: {e:#}"));
                continue;
            }
        };
        match conn.call(Method::GET, &path, Some(&tok), None).await {
            Ok(r) if r.status.is_success() => {
                stats::record(&mut tal[w].searches, due.elapsed());
                tal[w].epoch(r.header_i64(EPOCH_HEADER));
                let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                if v["hits"].as_array().is_none_or(Vec::is_empty) {
                    tal[w].empty_searches += 1;
                    tal[w].example(
                        w,
                        format!("GET {path} → 200 without hits: {}", snippet(&r.body)),
                    );
                }
            }
            Ok(r) => {
                tal[w].search_errors.add(key(Some(r.status), "", &r.body));
                tal[w].example(
                    w,
                    format!("GET {path} → {}: {}", r.status.as_u16(), snippet(&r.body)),
                );
            }
            Err(e) => {
                tal[w].search_errors.add(e.kind());
                tal[w].example(w, format!("GET {path} → {e}"));
            }
        }
    }
    tal
}

// ---------------------------------------------------------------------------
// The rebuild command.
// ---------------------------------------------------------------------------

async fn run_rebuild(cmd: &str, out: &Path) -> anyhow::Result<RebuildCmdReport> {
    let stdout_path = out.join("rebuild-cmd.stdout");
    let stderr_path = out.join("rebuild-cmd.stderr");
    let stdout = std::fs::File::create(&stdout_path)
        .with_context(|| format!("creating {}", stdout_path.display()))?;
    let stderr = std::fs::File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;
    let t0 = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("running `{cmd}`"))?;
    let seconds = t0.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    // The binaries log to stdout too; keep the lines without their colours.
    let lines: Vec<String> = text.lines().map(strip_ansi).collect();
    for l in lines.iter().filter(|l| l.starts_with("rebuilt ")) {
        report::say(&format!("  rebuild-cmd: {l}"));
    }
    Ok(RebuildCmdReport {
        command: cmd.to_owned(),
        exit_status: status.to_string(),
        success: status.success(),
        seconds,
        rebuilt: lines.iter().filter_map(|l| parse_rebuilt(l)).collect(),
        stdout: lines,
        stdout_file: stdout_path.display().to_string(),
        stderr_file: stderr_path.display().to_string(),
    })
}

/// `s` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `rebuilt <projection>: N events in S s (R events/s); epoch E, checkpoint C`.
fn parse_rebuilt(line: &str) -> Option<RebuiltLine> {
    let rest = line.trim().strip_prefix("rebuilt ")?;
    let (projection, rest) = rest.split_once(": ")?;
    let (events, rest) = rest.split_once(" events in ")?;
    let (seconds, rest) = rest.split_once(" s (")?;
    let (rate, rest) = rest.split_once(" events/s); epoch ")?;
    let (epoch, checkpoint) = rest.split_once(", checkpoint ")?;
    Some(RebuiltLine {
        projection: projection.to_owned(),
        events: events.trim().parse().ok()?,
        seconds: seconds.trim().parse().ok()?,
        events_per_s: rate.trim().parse().ok()?,
        epoch: epoch.trim().parse().ok()?,
        checkpoint: checkpoint.trim().parse().ok()?,
    })
}

// ---------------------------------------------------------------------------
// WebSocket clients.
// ---------------------------------------------------------------------------

/// What one WebSocket client brings back.
struct Listened {
    index: usize,
    user: Arc<User>,
    subscribed: bool,
    /// Per traffic room: message ids received live.
    received: Vec<HashSet<String>>,
    duplicates: u64,
    /// Per traffic room: resync reasons received.
    resyncs: Vec<Vec<String>>,
    subscribed_epochs: Vec<Option<i64>>,
    errors: Errors,
    lost: Option<String>,
}

/// Parses a server frame: (type, room_id, the rest).
fn frame(text: &str) -> Option<(String, Option<String>, Value)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let ty = v.get("type")?.as_str()?.to_owned();
    let room = v.get("room_id").and_then(Value::as_str).map(str::to_owned);
    Some((ty, room, v))
}

fn subscribe_frame(room: &str, epoch: Option<i64>) -> Message {
    let mut f = json!({"type": "subscribe", "room_id": room});
    if let Some(e) = epoch {
        f["epoch"] = json!(e);
    }
    Message::text(f.to_string())
}

/// Opens a socket, subscribes it to every room and reports on `ready` (Ok(true) when the
/// server rejected the `epoch` field), then records frames until `stop`.
#[allow(clippy::too_many_arguments)]
async fn listen(
    index: usize,
    dialer: Dialer,
    target: Target,
    user: Arc<User>,
    rooms: Vec<String>,
    epoch: Option<i64>,
    timeout: Duration,
    ready: mpsc::Sender<Result<bool, String>>,
    mut stop: watch::Receiver<bool>,
) -> Listened {
    let n = rooms.len();
    let mut res = Listened {
        index,
        user: user.clone(),
        subscribed: false,
        received: vec![HashSet::new(); n],
        duplicates: 0,
        resyncs: vec![Vec::new(); n],
        subscribed_epochs: Vec::new(),
        errors: Errors::default(),
        lost: None,
    };
    let room_of: HashMap<String, usize> = rooms
        .iter()
        .enumerate()
        .map(|(i, r)| (r.clone(), i))
        .collect();
    let mut conn = Conn::new(target, timeout);
    let token = match user.bearer(&mut conn).await {
        Ok(t) => t,
        Err(_) => {
            let _ = ready.send(Err("refresh".into())).await;
            return res;
        }
    };
    let mut ws: Ws = match tokio::time::timeout(timeout, dialer.open(index, &token)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            let _ = ready.send(Err(e)).await;
            return res;
        }
        Err(_) => {
            let _ = ready.send(Err("open-timeout".into())).await;
            return res;
        }
    };
    // Subscribe to every room; frames of rooms already live are recorded meanwhile.
    let mut epoch = epoch;
    let mut rejected = false;
    let mut pending: HashSet<usize> = (0..n).collect();
    for r in &rooms {
        if ws.send(subscribe_frame(r, epoch)).await.is_err() {
            let _ = ready.send(Err("subscribe-send".into())).await;
            return res;
        }
    }
    let deadline = Instant::now() + timeout;
    let mut error_rounds = 0u32;
    while !pending.is_empty() {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                let _ = ready.send(Err("subscribe-timeout".into())).await;
                return res;
            }
            Ok(Some(Ok(m))) => m,
            Ok(_) => {
                let _ = ready.send(Err("subscribe-closed".into())).await;
                return res;
            }
        };
        let Message::Text(text) = msg else { continue };
        let Some((ty, room, v)) = frame(text.as_str()) else {
            continue;
        };
        let r = room.as_deref().and_then(|r| room_of.get(r).copied());
        match ty.as_str() {
            "subscribed" => {
                if let Some(r) = r {
                    pending.remove(&r);
                    res.subscribed_epochs
                        .push(v.get("epoch").and_then(Value::as_i64));
                }
            }
            "error" => {
                // Errors name no room: subscribe the pending rooms again (without the
                // epoch field when that is what the server refused), a few times.
                let code = v["code"].as_str().unwrap_or("?").to_owned();
                if code == "invalid_frame" && epoch.is_some() {
                    epoch = None;
                    rejected = true;
                } else {
                    error_rounds += 1;
                    if error_rounds > 5 * n as u32 {
                        let _ = ready.send(Err(format!("subscribe-error-{code}"))).await;
                        return res;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let mut again: Vec<usize> = pending.iter().copied().collect();
                again.sort_unstable();
                for p in again {
                    if ws.send(subscribe_frame(&rooms[p], epoch)).await.is_err() {
                        let _ = ready.send(Err("subscribe-send".into())).await;
                        return res;
                    }
                }
            }
            _ => record(&mut res, &ty, r, &v),
        }
    }
    res.subscribed = true;
    let _ = ready.send(Ok(rejected)).await;
    drop(ready);
    let mut ping = tokio::time::interval(Duration::from_secs(10));
    ping.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = ping.tick() => {
                let _ = ws.send(Message::text(r#"{"type":"ping"}"#)).await;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    if let Some((ty, room, v)) = frame(text.as_str()) {
                        let r = room.as_deref().and_then(|r| room_of.get(r).copied());
                        record(&mut res, &ty, r, &v);
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    res.lost = Some(format!("closed-{}", c.map_or(0, |c| u16::from(c.code))));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    res.lost = Some("ws-error".into());
                    break;
                }
                None => {
                    res.lost = Some("eof".into());
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    res
}

/// Records one frame received after subscribing.
fn record(res: &mut Listened, ty: &str, room: Option<usize>, v: &Value) {
    match (ty, room) {
        ("message_sent", Some(r)) => {
            if let Some(id) = v["data"]["message_id"].as_str()
                && !res.received[r].insert(id.to_owned())
            {
                res.duplicates += 1;
            }
        }
        ("resync", Some(r)) => {
            let reason = v["reason"].as_str().unwrap_or("?").to_owned();
            res.resyncs[r].push(reason);
        }
        ("subscribed", Some(_)) => {
            res.subscribed_epochs
                .push(v.get("epoch").and_then(Value::as_i64));
        }
        ("error", _) => res
            .errors
            .add(format!("error-{}", v["code"].as_str().unwrap_or("?"))),
        _ => {}
    }
}

/// Reloads a room's history forwards from `after_seq` (waiting for `min_position`);
/// returns the message ids.
async fn reload(
    conn: &mut Conn,
    user: &User,
    room: &str,
    after_seq: u64,
    min_position: i64,
) -> Result<HashSet<String>, String> {
    let mut ids = HashSet::new();
    let mut after = after_seq;
    loop {
        let tok = user
            .bearer(conn)
            .await
            .map_err(|e| format!("refresh: {e:#}"))?;
        let path = format!(
            "/v1/rooms/{room}/messages?after_seq={after}&limit=100&min_position={min_position}"
        );
        let r = conn
            .call(Method::GET, &path, Some(&tok), None)
            .await
            .map_err(|e| format!("GET {path} → {e}"))?;
        if !r.status.is_success() {
            return Err(format!(
                "GET {path} → {}: {}",
                r.status.as_u16(),
                snippet(&r.body)
            ));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))?;
        for m in v["messages"].as_array().into_iter().flatten() {
            if let Some(id) = m["message_id"].as_str() {
                ids.insert(id.to_owned());
            }
        }
        match v["next_after_seq"].as_u64() {
            Some(next) if next > after => after = next,
            _ => return Ok(ids),
        }
    }
}

async fn verify(
    t: &Traffic,
    sent: &[Sent],
    listened: Vec<Listened>,
    args: &RebuildArgs,
    open_errors: Errors,
    epoch_hint: Option<i64>,
    epoch_rejected: bool,
) -> WsReport {
    let n = t.rooms.len();
    let reload_all = args.reload_all;
    let mut by_room: Vec<Vec<&Sent>> = vec![Vec::new(); n];
    for s in sent {
        by_room[s.room].push(s);
    }
    let last_position = sent.iter().map(|s| s.position).max().unwrap_or(0);
    let first_seq: Vec<u64> = by_room
        .iter()
        .map(|v| v.iter().map(|s| s.seq).min().unwrap_or(1))
        .collect();
    let mut w = WsReport {
        clients: args.ws_clients,
        rooms_per_client: n,
        subscribed: 0,
        open_errors,
        subscribe_epoch: match (epoch_hint, epoch_rejected) {
            (None, _) => "not sent (no Chat-Epoch seen)".into(),
            (Some(_), true) => "rejected by the server (sent without)".into(),
            (Some(_), false) => "sent".into(),
        },
        subscribed_epochs: BTreeMap::new(),
        resyncs_by_reason: BTreeMap::new(),
        epoch_resyncs_per_client: Vec::new(),
        clients_with_resync: 0,
        message_frames: 0,
        duplicate_frames: 0,
        frame_errors: Errors::default(),
        sockets_lost: Errors::default(),
        expected: 0,
        missing_without_resync: 0,
        missing_after_reload: 0,
        missing: 0,
        reloads: 0,
        reload_errors: Errors::default(),
        history_missing: 0,
        missing_examples: Vec::new(),
    };
    // The reloads, a few at a time: (client, room) → ids.
    let jobs: Vec<(usize, usize)> = listened
        .iter()
        .filter(|l| l.subscribed)
        .flat_map(|l| {
            (0..n)
                .filter(move |r| reload_all || !l.resyncs[*r].is_empty())
                .map(move |r| (l.index, r))
        })
        .collect();
    let users: HashMap<usize, Arc<User>> =
        listened.iter().map(|l| (l.index, l.user.clone())).collect();
    let reloaded: HashMap<(usize, usize), Result<HashSet<String>, String>> =
        futures::stream::iter(jobs)
            .map(|(c, r)| {
                let user = users.get(&c).cloned();
                let room = t.rooms[r].clone();
                let after = first_seq[r].saturating_sub(1);
                let mut conn = Conn::new(t.target.clone(), t.timeout);
                async move {
                    let res = match user {
                        Some(u) => reload(&mut conn, &u, &room, after, last_position).await,
                        None => Err("no user".into()),
                    };
                    ((c, r), res)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
    for l in &listened {
        if let Some(why) = &l.lost {
            w.sockets_lost.add(why.clone());
        }
        w.frame_errors.merge(&l.errors);
        if !l.subscribed {
            continue;
        }
        w.subscribed += 1;
        for e in &l.subscribed_epochs {
            let k = e.map_or_else(|| "not seen".to_owned(), |e| e.to_string());
            *w.subscribed_epochs.entry(k).or_default() += 1;
        }
        let mut epoch_resyncs = 0;
        let mut any = false;
        for (r, room_sent) in by_room.iter().enumerate() {
            for reason in &l.resyncs[r] {
                *w.resyncs_by_reason.entry(reason.clone()).or_default() += 1;
                epoch_resyncs += u64::from(reason == "epoch");
                any = true;
            }
            w.message_frames += l.received[r].len() as u64;
            w.expected += room_sent.len() as u64;
            let history = reloaded.get(&(l.index, r));
            if let Some(res) = history {
                w.reloads += 1;
                if let Err(e) = res {
                    w.reload_errors.add("reload");
                    if w.missing_examples.len() < MAX_EXAMPLES {
                        w.missing_examples.push(format!("client {}: {e}", l.index));
                    }
                }
            }
            let history = history.and_then(|h| h.as_ref().ok());
            let resynced = !l.resyncs[r].is_empty();
            for s in room_sent {
                let live = l.received[r].contains(&s.id);
                let in_history = history.is_some_and(|h| h.contains(&s.id));
                if history.is_some() && !in_history {
                    w.history_missing += 1;
                }
                // Without a resync every message must have come live.
                if live || (resynced && in_history) {
                    continue;
                }
                if resynced {
                    w.missing_after_reload += 1;
                } else {
                    w.missing_without_resync += 1;
                }
                if w.missing_examples.len() < MAX_EXAMPLES {
                    w.missing_examples.push(format!(
                        "client {} room {}: message {} (seq {}, position {})",
                        l.index, t.rooms[r], s.id, s.seq, s.position
                    ));
                }
            }
        }
        w.duplicate_frames += l.duplicates;
        w.epoch_resyncs_per_client.push(epoch_resyncs);
        w.clients_with_resync += usize::from(any);
    }
    w.missing = w.missing_without_resync + w.missing_after_reload;
    w
}

// ---------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------

pub fn tables(r: &RebuildReport) -> Vec<Table> {
    let mut win = Table::new(
        format!(
            "rebuild under traffic via {} ({:.0} sends/s, {:.0} reads/s over {} rooms, \
             {:.0} searches/s)",
            r.url, r.send_rate, r.read_rate, r.rooms_read, r.search_rate
        ),
        &[
            "window",
            "s",
            "reads",
            "read p50 ms",
            "read p99 ms",
            "read max ms",
            "empty hist.",
            "searches",
            "search p50 ms",
            "search p99 ms",
            "no hits",
            "sends",
            "errors",
            "Chat-Epoch",
        ],
    );
    for w in &r.windows {
        let mut errors = w.read_errors.clone();
        errors.merge(&w.search_errors);
        errors.merge(&w.send_errors);
        win.row(vec![
            w.window.to_owned(),
            f2(w.seconds),
            w.reads.count.to_string(),
            format!("{:.3}", w.reads.p50_ms),
            format!("{:.3}", w.reads.p99_ms),
            f2(w.reads.max_ms),
            w.empty_histories.to_string(),
            w.searches.count.to_string(),
            format!("{:.3}", w.searches.p50_ms),
            format!("{:.3}", w.searches.p99_ms),
            w.empty_searches.to_string(),
            w.sends_accepted.to_string(),
            errors.brief(),
            w.epochs
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    let mut cmd = Table::new(
        format!(
            "rebuild command `{}`: {} after {:.2}s",
            r.rebuild.command, r.rebuild.exit_status, r.rebuild.seconds
        ),
        &[
            "projection",
            "events",
            "s",
            "events/s",
            "epoch",
            "checkpoint",
        ],
    );
    for l in &r.rebuild.rebuilt {
        cmd.row(vec![
            l.projection.clone(),
            l.events.to_string(),
            f2(l.seconds),
            f0(l.events_per_s),
            l.epoch.to_string(),
            l.checkpoint.to_string(),
        ]);
    }
    let ws = &r.ws;
    let mut wst = Table::new(
        format!(
            "WebSockets: {} clients × {} rooms (epoch in subscribe: {})",
            ws.clients, ws.rooms_per_client, ws.subscribe_epoch
        ),
        &[
            "subscribed",
            "resyncs",
            "clients resynced",
            "epoch resyncs/client",
            "frames",
            "expected",
            "missing",
            "missing (no resync)",
            "missing (after reload)",
            "reloads",
            "history missing",
            "dup",
            "lost sockets",
            "errors",
        ],
    );
    let per_client = {
        let v = &ws.epoch_resyncs_per_client;
        match (v.iter().min(), v.iter().max()) {
            (Some(a), Some(b)) if a == b => a.to_string(),
            (Some(a), Some(b)) => format!("{a}–{b}"),
            _ => "-".into(),
        }
    };
    let mut errs = ws.open_errors.clone();
    errs.merge(&ws.frame_errors);
    errs.merge(&ws.reload_errors);
    wst.row(vec![
        ws.subscribed.to_string(),
        if ws.resyncs_by_reason.is_empty() {
            "0".into()
        } else {
            ws.resyncs_by_reason
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
        ws.clients_with_resync.to_string(),
        per_client,
        ws.message_frames.to_string(),
        ws.expected.to_string(),
        ws.missing.to_string(),
        ws.missing_without_resync.to_string(),
        ws.missing_after_reload.to_string(),
        ws.reloads.to_string(),
        ws.history_missing.to_string(),
        ws.duplicate_frames.to_string(),
        ws.sockets_lost.brief(),
        errs.brief(),
    ]);
    vec![win, cmd, wst]
}

pub fn emit(r: &RebuildReport, out: &Path) -> anyhow::Result<()> {
    let mut md = format!("## loadgen rebuild\n\n{}\n\n", r.started_at);
    if let Some(f) = &r.fill {
        let line = format!(
            "Fill: {} events of the mixed workload in {:.1}s ({:.0} events/s), errors {}; \
             see rebuild-fill.md.",
            f.events_appended,
            f.total_s,
            f.events_per_s,
            f.errors.brief()
        );
        report::say(&line);
        md.push_str(&line);
        md.push_str("\n\n");
    }
    for t in tables(r) {
        t.print();
        md.push_str(&t.markdown());
        md.push('\n');
    }
    let mut notes = vec![
        format!(
            "Chat-Epoch before the rebuild: {}; after: {}",
            r.epoch_before, r.epoch_after
        ),
        format!(
            "sends accepted: {}; subscribed frames' epochs: {}",
            r.sends_accepted,
            r.ws.subscribed_epochs
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "cpu during the rebuild: {}",
            r.cpu_during.as_ref().map_or("-".into(), CpuUsage::brief)
        ),
        "latencies are from each request's scheduled time (open loop)".to_owned(),
    ];
    for l in r
        .rebuild
        .stdout
        .iter()
        .filter(|l| l.starts_with("rebuilt "))
    {
        notes.push(format!("rebuild command: {l}"));
    }
    notes.push(if r.passed {
        "PASSED: no errors, no empty histories, no search without hits, nothing missing".to_owned()
    } else {
        format!("FAILED: {}", r.failures.join("; "))
    });
    for n in &notes {
        report::say(n);
        md.push_str(&format!("- {n}\n"));
    }
    let examples: Vec<&String> = r
        .error_examples
        .iter()
        .chain(&r.ws.missing_examples)
        .collect();
    if !examples.is_empty() {
        report::say("examples:");
        md.push_str("\nExamples:\n\n");
        for e in examples {
            report::say(&format!("  {e}"));
            md.push_str(&format!("- `{e}`\n"));
        }
    }
    let json = report::write_json(out, "rebuild.json", r)?;
    let mdp = report::write_text(out, "rebuild.md", &md)?;
    for f in [json, mdp] {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_lines_parse() {
        let l = parse_rebuilt(
            "rebuilt read_models: 50213 events in 12.34 s (4069 events/s); epoch 3, checkpoint 50213",
        )
        .unwrap();
        assert_eq!(l.projection, "read_models");
        assert_eq!(l.events, 50213);
        assert!((l.seconds - 12.34).abs() < 1e-9);
        assert!((l.events_per_s - 4069.0).abs() < 1e-9);
        assert_eq!((l.epoch, l.checkpoint), (3, 50213));
        assert!(parse_rebuilt("something else").is_none());
    }

    #[test]
    fn frames_parse_and_are_recorded_per_room() {
        let user = Arc::new(User::for_tests());
        let mut res = Listened {
            index: 0,
            user,
            subscribed: true,
            received: vec![HashSet::new(); 2],
            duplicates: 0,
            resyncs: vec![Vec::new(); 2],
            subscribed_epochs: Vec::new(),
            errors: Errors::default(),
            lost: None,
        };
        let sent = r#"{"type":"message_sent","room_id":"b","version":3,"position":9,"data":{"message_id":"m1"}}"#;
        let (ty, room, v) = frame(sent).unwrap();
        assert_eq!((ty.as_str(), room.as_deref()), ("message_sent", Some("b")));
        record(&mut res, &ty, Some(1), &v);
        record(&mut res, &ty, Some(1), &v);
        assert!(res.received[1].contains("m1"));
        assert_eq!(res.duplicates, 1);
        let (ty, _, v) = frame(r#"{"type":"resync","room_id":"a","reason":"epoch"}"#).unwrap();
        record(&mut res, &ty, Some(0), &v);
        assert_eq!(res.resyncs[0], vec!["epoch".to_owned()]);
        let (ty, _, v) = frame(r#"{"type":"subscribed","room_id":"a","version":4}"#).unwrap();
        record(&mut res, &ty, Some(0), &v);
        assert_eq!(res.subscribed_epochs, vec![None]);
    }

    #[test]
    fn colours_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "time  INFO x"
        );
    }

    #[test]
    fn subscribe_frames_carry_the_epoch_only_when_known() {
        let with = subscribe_frame("r", Some(2)).into_text().unwrap();
        assert!(with.as_str().contains(r#""epoch":2"#), "{with}");
        let without = subscribe_frame("r", None).into_text().unwrap();
        assert!(!without.as_str().contains("epoch"), "{without}");
    }
}
