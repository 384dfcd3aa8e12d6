//! `fanout`: end-to-end delivery latency of the live feed.
//!
//! C WebSocket clients subscribe (live only) to R public rooms, spread evenly;
//! then messages are sent at a fixed rate M (open loop: scheduled send times,
//! round-robin over the rooms) by a separate sender user. For every message
//! the time its `201` arrived (send accepted) is recorded, and every socket
//! that receives its `message_sent` frame (matched by `message_id`) records
//! the receive time. Delivery latency = receive − accept (the figure of the
//! target) and receive − scheduled send time (includes the send itself).
//! Deliveries that never arrive are counted as missing.
//!
//! `--target centrifugo` runs the same scenario against Centrifugo instead
//! (issue #16, a fair side-by-side; [`super::fanout_centrifugo`]): a channel per
//! room, socket i subscribed to the channel of room i mod R, the same schedule,
//! body size, senders, latency definitions and report. Only opening a socket,
//! sending a message and recognising a delivery differ ([`Backend`]).
//!
//! Server CPU per delivery: the utime + stime (`/proc/PID/stat`) of the server
//! processes — `--server-pid` (with their child processes), or by default every
//! process named `chat`, `command-api`, `query-api` or `projector` (the platform)
//! or `centrifugo` — is read at the start and at the end of the measured window
//! and divided by the deliveries received of the window's messages
//! ([`ServerCpu`]). For the platform the same figure is also given with
//! PostgreSQL and nats-server added (`stack_cpu`), since its fan-out path runs
//! through both; Centrifugo (memory engine) has nothing outside its process.
//!
//! The WebSocket helpers here ([`Fixture`], [`Dialer`], [`subscribe`]) are
//! shared with `connections`.

use crate::http::{Conn, Target, bearer, field, post};
use crate::report::{self, Table, f0};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, Slots, parse_duration};
use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hyper::header::{AUTHORIZATION, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use uuid::Uuid;

#[derive(clap::Args, Debug, Clone)]
pub struct FanoutArgs {
    /// Base URL of the platform (command and query routes on one port).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// WebSocket clients; client i subscribes to room i mod R.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Public rooms created for the run.
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Messages per second in total, on a fixed schedule, round-robin over the rooms.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Measured sending time.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured sending time before the measured part.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// How long the sockets keep listening after the last send (later deliveries count as missing).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub drain: Duration,
    /// Listening users (every one joins every room); socket i authenticates as user i mod U.
    /// Messages are sent by one more user, so a socket never sees its own user's sends.
    #[arg(long, default_value_t = 1)]
    pub users: usize,
    /// HTTP connections the open-loop sender spreads its sends over.
    #[arg(long, default_value_t = 32)]
    pub senders: usize,
    /// Message body length in bytes.
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// WebSocket handshakes (connect + upgrade + subscribe) in flight at once while opening.
    #[arg(long, default_value_t = 64)]
    pub open_concurrency: usize,
    /// Per-request and per-handshake timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Do not bind client sockets to 127.0.0.2–251 (by default they are, when the
    /// server is on IPv4 loopback, so ephemeral ports do not run out).
    #[arg(long)]
    pub no_spread: bool,
    /// What is measured: the platform, or Centrifugo (then --url is Centrifugo's, e.g. the
    /// CENTRIFUGO_URL that `scripts/centrifugo.sh start` prints, and --api-key and
    /// --hmac-secret are needed).
    #[arg(long, value_enum, default_value_t = TargetKind::Platform)]
    pub target: TargetKind,
    /// PIDs of the server processes whose CPU time (utime + stime, with their child
    /// processes) is divided by the deliveries; comma-separated or repeated. Default: every
    /// process named chat, command-api, query-api or projector (platform), or centrifugo
    /// (also as versioned binaries, NAME-v…).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    #[command(flatten)]
    pub centrifugo: super::fanout_centrifugo::CentrifugoArgs,
}

/// The system `fanout` measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// This platform (single node `chat`, or the roles behind one URL).
    #[default]
    Platform,
    /// Centrifugo: server HTTP API to publish, WebSocket JSON protocol to receive.
    Centrifugo,
}

#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    /// `fanout` (the platform) or `fanout-centrifugo`; also the output files' name.
    pub scenario: &'static str,
    pub target: TargetKind,
    /// What "accepted" is in the accept → socket latency.
    pub accept_means: &'static str,
    pub url: String,
    pub started_at: String,
    pub connections: usize,
    pub subscribed: usize,
    pub open_errors: Errors,
    pub open_s: f64,
    pub rooms: usize,
    pub users: usize,
    pub body_bytes: usize,
    pub target_rate_per_s: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub drain_s: f64,
    pub source_addresses: usize,
    /// Messages accepted (201) in the measured window.
    pub sent: u64,
    pub sent_per_s: f64,
    pub send_errors: Errors,
    /// Largest delay between a send's scheduled time and a free connection (ms).
    pub max_send_lag_ms: f64,
    /// Σ over measured accepted messages of the sockets subscribed to its room.
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub deliveries_missing: u64,
    pub deliveries_per_s: f64,
    /// The same message twice on one socket.
    pub duplicates: u64,
    /// Frames whose receive time preceded the arrival of the send's 201
    /// (recorded as 0 in the accept → socket histogram).
    pub delivered_before_accept: u64,
    /// `message_sent` frames for a message_id the sender does not know (e.g. a
    /// send that timed out but was committed).
    pub unknown_messages: u64,
    /// Sockets that the server closed or that failed during the run, by reason.
    pub sockets_lost: Errors,
    /// Send accepted (201 arrived) → message_sent on a socket.
    pub latency_accept_to_socket: Latency,
    /// Scheduled send time → message_sent on a socket.
    pub latency_scheduled_to_socket: Latency,
    /// Scheduled send time → 201 (the send itself).
    pub latency_send: Latency,
    pub distribution_accept_to_socket: Vec<(f64, f64)>,
    pub distribution_scheduled_to_socket: Vec<(f64, f64)>,
    /// Per second of the measured window (by scheduled send time): accept → socket
    /// (second, deliveries, p50 ms, p99 ms, max ms).
    pub per_second: Vec<(u64, u64, f64, f64, f64)>,
    pub cpu: Option<CpuUsage>,
    /// The server processes' CPU in the measured window, per delivery.
    pub server_cpu: Option<ServerCpu>,
    /// The same with PostgreSQL and nats-server added (platform only).
    pub stack_cpu: Option<ServerCpu>,
    #[serde(skip)]
    pub hist_accept: Histogram<u64>,
    #[serde(skip)]
    pub hist_scheduled: Histogram<u64>,
}

pub async fn run(args: &FanoutArgs, out: &Path) -> anyhow::Result<FanoutReport> {
    let r = measure(args).await?;
    emit(&r, out)?;
    Ok(r)
}

// ---------------------------------------------------------------------------
// Shared with `connections`: users and rooms, WebSocket dialing, subscribing.
// ---------------------------------------------------------------------------

/// Users and rooms made through the public API for a run.
pub struct Fixture {
    pub target: Target,
    /// Creates the rooms and (in `fanout`) sends the messages.
    pub sender: HeaderValue,
    /// `Bearer …` of the listening users (members of every room).
    pub listeners: Vec<HeaderValue>,
    pub rooms: Vec<String>,
    pub run_id: String,
}

/// Registers one sender and `listeners` users, has the sender create `rooms`
/// public rooms and every listener join every room.
pub async fn setup(url: &str, listeners: usize, rooms: usize) -> anyhow::Result<Fixture> {
    let target = Target::parse(url)?;
    let mut conn = Conn::new(target.clone(), Duration::from_secs(30));
    conn.connect()
        .await
        .map_err(|e| anyhow!("cannot reach {url}: {e}"))?;
    let run_id = Uuid::new_v4().simple().to_string()[..10].to_owned();
    let listeners = listeners.max(1);
    let rooms_n = rooms.max(1);
    report::say(&format!(
        "setup: registering {} users, creating {rooms_n} public rooms (run {run_id})",
        listeners + 1
    ));
    let mut tokens = Vec::with_capacity(listeners + 1);
    for u in 0..=listeners {
        let v = post(
            &mut conn,
            "/v1/auth/register",
            None,
            &json!({"username": format!("lg{run_id}_{u}"), "password": "loadgen-password-0123"}),
        )
        .await?;
        tokens.push(bearer(&field(&v, "access_token")?)?);
    }
    let sender = tokens.remove(0);
    let mut room_ids = Vec::with_capacity(rooms_n);
    for r in 0..rooms_n {
        let v = post(
            &mut conn,
            "/v1/rooms",
            Some(&sender),
            &json!({"name": format!("loadgen {run_id} {r}"), "visibility": "public"}),
        )
        .await?;
        room_ids.push(field(&v, "room_id")?);
    }
    for room in &room_ids {
        for tok in &tokens {
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
        sender,
        listeners: tokens,
        rooms: room_ids,
        run_id,
    })
}

pub type Ws = WebSocketStream<TcpStream>;

/// Opens authenticated WebSockets to `/v1/ws`, binding each to one of
/// 127.0.0.2–251 when the server is on IPv4 loopback (and spreading is on).
#[derive(Clone)]
pub struct Dialer {
    addr: SocketAddr,
    ws_url: String,
    spread: bool,
    config: WebSocketConfig,
}

/// Source addresses used when spreading.
pub const SOURCE_ADDRESSES: usize = 250;

impl Dialer {
    pub async fn new(url: &str, spread: bool) -> anyhow::Result<Self> {
        Self::new_at(url, "/v1/ws", spread).await
    }

    /// A dialer for the WebSocket endpoint at `path` of the server at `url`.
    pub async fn new_at(url: &str, path: &str, spread: bool) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(anyhow!("only http:// URLs are supported, got {url}"));
        }
        let auth = uri
            .authority()
            .ok_or_else(|| anyhow!("URL {url} has no host"))?;
        let host_port = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
        let addr = tokio::net::lookup_host(&host_port)
            .await
            .with_context(|| format!("resolving {host_port}"))?
            .next()
            .ok_or_else(|| anyhow!("{host_port} resolves to nothing"))?;
        let spread = spread && matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback());
        // tungstenite's defaults are 128 KiB per buffer, allocated up front.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        Ok(Self {
            addr,
            ws_url: format!("ws://{}{path}", auth.as_str()),
            spread,
            config,
        })
    }

    /// How many distinct source addresses connections use.
    pub fn source_addresses(&self) -> usize {
        if self.spread { SOURCE_ADDRESSES } else { 1 }
    }

    /// TCP connect (from 127.0.0.(2 + i mod 250) when spreading) and the
    /// WebSocket upgrade; the error is the key it is counted under.
    pub async fn open(&self, i: usize, token: &HeaderValue) -> Result<Ws, String> {
        self.open_with(i, Some(token)).await
    }

    /// [`Dialer::open`], with the `Authorization` header only when there is a token.
    pub async fn open_with(&self, i: usize, token: Option<&HeaderValue>) -> Result<Ws, String> {
        let stream = if self.spread {
            let last = 2 + (i % SOURCE_ADDRESSES) as u8;
            let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
            let sock = TcpSocket::new_v4().map_err(|e| io_key("socket", &e))?;
            sock.bind(local).map_err(|e| io_key("bind", &e))?;
            sock.connect(self.addr)
                .await
                .map_err(|e| io_key("connect", &e))?
        } else {
            TcpStream::connect(self.addr)
                .await
                .map_err(|e| io_key("connect", &e))?
        };
        let _ = stream.set_nodelay(true);
        let mut req = self
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|_| "request".to_owned())?;
        if let Some(token) = token {
            req.headers_mut().insert(AUTHORIZATION, token.clone());
        }
        match tokio_tungstenite::client_async_with_config(req, stream, Some(self.config)).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                Err(format!("upgrade-{}", resp.status().as_u16()))
            }
            Err(_) => Err("upgrade".to_owned()),
        }
    }
}

/// `connect:EMFILE`-style keys (the OS error name when there is one).
fn io_key(stage: &str, e: &std::io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(24) => "EMFILE".to_owned(),
        Some(23) => "ENFILE".to_owned(),
        Some(99) => "EADDRNOTAVAIL".to_owned(),
        Some(98) => "EADDRINUSE".to_owned(),
        Some(111) => "ECONNREFUSED".to_owned(),
        Some(104) => "ECONNRESET".to_owned(),
        Some(110) => "ETIMEDOUT".to_owned(),
        Some(n) => format!("errno{n}"),
        None => format!("{:?}", e.kind()),
    };
    format!("{stage}:{name}")
}

/// The fields of a server frame that matter here.
#[derive(Deserialize)]
struct ServerFrame<'a> {
    #[serde(rename = "type", borrow)]
    ty: &'a str,
    #[serde(default, borrow)]
    room_id: Option<&'a str>,
    #[serde(default, borrow)]
    code: Option<&'a str>,
    #[serde(default, borrow)]
    data: Option<FrameData<'a>>,
}

#[derive(Deserialize)]
struct FrameData<'a> {
    #[serde(default, borrow)]
    message_id: Option<&'a str>,
}

/// The `message_id` of a `message_sent` frame.
fn message_id_of(text: &str) -> Option<Uuid> {
    let f: ServerFrame<'_> = serde_json::from_str(text).ok()?;
    if f.ty != "message_sent" {
        return None;
    }
    f.data?.message_id?.parse().ok()
}

/// Subscribes (live only) and waits for `subscribed`; an `error` frame (e.g. the
/// membership not yet seen by this node) is retried a few times.
pub async fn subscribe(ws: &mut Ws, room_id: &str, timeout: Duration) -> Result<(), String> {
    let frame = json!({"type": "subscribe", "room_id": room_id}).to_string();
    let deadline = Instant::now() + timeout;
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        ws.send(Message::text(frame.clone()))
            .await
            .map_err(|_| "subscribe-send".to_owned())?;
        loop {
            let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return Err("subscribe-timeout".into()),
                Ok(None) => return Err("subscribe-eof".into()),
                Ok(Some(Err(_))) => return Err("subscribe-ws-error".into()),
                Ok(Some(Ok(m))) => m,
            };
            let Message::Text(text) = msg else {
                if let Message::Close(c) = msg {
                    return Err(format!(
                        "subscribe-closed-{}",
                        c.map_or(0, |c| u16::from(c.code))
                    ));
                }
                continue;
            };
            let Ok(f) = serde_json::from_str::<ServerFrame<'_>>(text.as_str()) else {
                continue;
            };
            match f.ty {
                "subscribed" if f.room_id == Some(room_id) => return Ok(()),
                "error" => {
                    if attempt == 4 {
                        return Err(format!("subscribe-error-{}", f.code.unwrap_or("?")));
                    }
                    break;
                }
                _ => {}
            }
        }
    }
    Err("subscribe-error".into())
}

/// Waits for a permit of `gate`, then opens socket `i` and subscribes it to
/// `room`; returns it with the time connect + upgrade + subscribe took
/// (waiting for the permit not included), or the error key.
pub async fn open_subscribed(
    dialer: &Dialer,
    gate: &Semaphore,
    i: usize,
    token: &HeaderValue,
    room: &str,
    timeout: Duration,
) -> Result<(Ws, Duration), String> {
    let _permit = gate.acquire().await;
    let t0 = Instant::now();
    match tokio::time::timeout(timeout, async {
        let mut ws = dialer.open(i, token).await?;
        subscribe(&mut ws, room, timeout).await?;
        Ok::<_, String>(ws)
    })
    .await
    {
        Ok(Ok(ws)) => Ok((ws, t0.elapsed())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("open-timeout".to_owned()),
    }
}

/// Result of opening one socket: its index and how long connect + upgrade +
/// subscribe took, or the error key.
pub type Opened = (usize, Result<Duration, String>);

/// Progress of the opening phase; returns the results in arrival order.
pub async fn collect_opened(mut rx: mpsc::Receiver<Opened>, n: usize, label: &str) -> Vec<Opened> {
    let pb = stats::progress(n as u64, n >= 200, label);
    let mut out = Vec::with_capacity(n);
    let mut failed = 0u64;
    while out.len() < n {
        match rx.recv().await {
            Some(o) => {
                if o.1.is_err() {
                    failed += 1;
                }
                out.push(o);
                pb.set_position(out.len() as u64);
                if out.len() % 100 == 0 {
                    pb.set_message(format!("{failed} failed"));
                }
            }
            None => break,
        }
    }
    pb.finish_and_clear();
    out
}

// ---------------------------------------------------------------------------
// The fanout run: what differs between the systems measured, and the rest.
// ---------------------------------------------------------------------------

/// What differs between the systems `fanout` measures: opening and subscribing
/// a socket, sending a message, recognising a delivery. Everything else (the
/// schedule, the senders, matching deliveries to sends, the latency figures,
/// CPU, the report) is [`drive`]'s, the same for every system.
pub trait Backend: Send + Sync + 'static {
    /// The report's `scenario` and the name of its output files.
    const SCENARIO: &'static str;
    /// What "accepted" is in the accept → socket latency (goes into the report).
    const ACCEPT_MEANS: &'static str;
    /// Names (/proc/PID/comm) of the server processes when `--server-pid` is not given.
    const SERVER_PROCESSES: &'static [&'static str];
    /// Processes outside the server its fan-out also runs through (their CPU is
    /// added in `stack_cpu`); empty when there are none.
    const BACKING_PROCESSES: &'static [&'static str];

    /// Rooms (channels) of the run.
    fn rooms(&self) -> usize;
    /// Users the sockets authenticate as.
    fn users(&self) -> usize;
    /// Distinct client source addresses of the sockets.
    fn source_addresses(&self) -> usize;
    /// Where the senders' HTTP connections go.
    fn http_target(&self) -> &Target;
    /// Opens socket `i` and subscribes it (live only) to `room`.
    fn open(
        &self,
        i: usize,
        room: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Ws, String>> + Send;
    /// Sends message `n` of sender `s` into `room` on `conn`; the message's id once it
    /// is accepted, or the key the failure is counted under.
    fn send(
        &self,
        conn: &mut Conn,
        s: usize,
        n: u64,
        room: usize,
        body: &str,
    ) -> impl Future<Output = Result<Uuid, String>> + Send;
    /// Reads one text frame from a socket: the ids of the messages it delivers go to
    /// `ids`; returns a frame to send back (a pong), if one is due.
    fn read_frame(&self, text: &str, ids: &mut Vec<Uuid>) -> Option<&'static str>;
}

/// The platform: users and rooms through its public API, `/v1/ws` sockets,
/// `POST /v1/rooms/{id}/messages`, `message_sent` frames.
struct Platform {
    fx: Fixture,
    dialer: Dialer,
    paths: Vec<String>,
}

impl Backend for Platform {
    const SCENARIO: &'static str = "fanout";
    const ACCEPT_MEANS: &'static str = "the arrival of the send's 201 (the message is committed \
         to the event log; fan-out starts after it, from the relay and the stream)";
    const SERVER_PROCESSES: &'static [&'static str] =
        &["chat", "command-api", "query-api", "projector"];
    const BACKING_PROCESSES: &'static [&'static str] = &["postgres", "nats-server"];

    fn rooms(&self) -> usize {
        self.fx.rooms.len()
    }
    fn users(&self) -> usize {
        self.fx.listeners.len()
    }
    fn source_addresses(&self) -> usize {
        self.dialer.source_addresses()
    }
    fn http_target(&self) -> &Target {
        &self.fx.target
    }

    async fn open(&self, i: usize, room: usize, timeout: Duration) -> Result<Ws, String> {
        let token = &self.fx.listeners[i % self.fx.listeners.len()];
        let mut ws = self.dialer.open(i, token).await?;
        subscribe(&mut ws, &self.fx.rooms[room], timeout).await?;
        Ok(ws)
    }

    async fn send(
        &self,
        conn: &mut Conn,
        s: usize,
        n: u64,
        room: usize,
        body: &str,
    ) -> Result<Uuid, String> {
        let payload =
            json!({"client_msg_id": format!("{}-f{s}-{n}", self.fx.run_id), "body": body});
        let bytes = serde_json::to_vec(&payload).map_err(|_| "encode".to_owned())?;
        match conn
            .post_json(&self.paths[room], Some(&self.fx.sender), Bytes::from(bytes))
            .await
        {
            Ok((st, b)) if st.is_success() => serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v.get("message_id")?.as_str()?.parse::<Uuid>().ok())
                .ok_or_else(|| "no-message-id".to_owned()),
            Ok((st, _)) => Err(st.as_u16().to_string()),
            Err(e) => Err(e.kind().to_owned()),
        }
    }

    fn read_frame(&self, text: &str, ids: &mut Vec<Uuid>) -> Option<&'static str> {
        ids.extend(message_id_of(text));
        None
    }
}

/// What a listening socket brings back.
struct Listened {
    room: usize,
    subscribed: bool,
    deliveries: Vec<(Uuid, Instant)>,
    /// Why the socket ended before it was told to stop.
    lost: Option<String>,
}

/// One accepted send.
struct Sent {
    id: Uuid,
    room: usize,
    intended: Instant,
    accepted: Instant,
}

struct SenderResult {
    sent: Vec<Sent>,
    errors: Errors,
    hist: Histogram<u64>,
    max_lag: Duration,
}

pub async fn measure(args: &FanoutArgs) -> anyhow::Result<FanoutReport> {
    if args.connections == 0 || args.rooms == 0 || args.senders == 0 {
        return Err(anyhow!(
            "--connections, --rooms and --senders must be positive"
        ));
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(anyhow!("--rate must be positive"));
    }
    let fd_note = super::connections::raise_nofile(args.connections + args.senders + 64);
    if let Some(note) = fd_note {
        report::say(&note);
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    match args.target {
        TargetKind::Platform => {
            let fx = setup(&args.url, args.users, args.rooms).await?;
            let dialer = Dialer::new(&args.url, !args.no_spread).await?;
            let paths = fx
                .rooms
                .iter()
                .map(|r| format!("/v1/rooms/{r}/messages"))
                .collect();
            let backend = Platform { fx, dialer, paths };
            drive(args, Arc::new(backend), started_at).await
        }
        TargetKind::Centrifugo => {
            let backend = super::fanout_centrifugo::Centrifugo::new(args).await?;
            drive(args, Arc::new(backend), started_at).await
        }
    }
}

/// Opens and subscribes the sockets, sends on the schedule, waits for the
/// drain, matches deliveries to sends and computes the report.
pub async fn drive<B: Backend>(
    args: &FanoutArgs,
    backend: Arc<B>,
    started_at: String,
) -> anyhow::Result<FanoutReport> {
    let rooms = backend.rooms();
    // Open and subscribe every socket.
    report::say(&format!(
        "opening {} WebSockets over {rooms} rooms from {} source address(es)",
        args.connections,
        backend.source_addresses()
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (opened_tx, opened_rx) = mpsc::channel::<Opened>(1024);
    let gate = Arc::new(Semaphore::new(args.open_concurrency.max(1)));
    let open_start = Instant::now();
    let mut sockets = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let (backend, gate, opened_tx) = (backend.clone(), gate.clone(), opened_tx.clone());
        let mut stop = stop_rx.clone();
        let timeout = args.timeout;
        sockets.push(tokio::spawn(async move {
            let room = i % rooms;
            let mut res = Listened {
                room,
                subscribed: false,
                deliveries: Vec::new(),
                lost: None,
            };
            let opened = {
                let _permit = gate.acquire().await;
                let t0 = Instant::now();
                match tokio::time::timeout(timeout, backend.open(i, room, timeout)).await {
                    Ok(Ok(ws)) => Ok((ws, t0.elapsed())),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("open-timeout".to_owned()),
                }
            };
            let mut ws = match opened {
                Ok((ws, took)) => {
                    let _ = opened_tx.send((i, Ok(took))).await;
                    ws
                }
                Err(e) => {
                    let _ = opened_tx.send((i, Err(e))).await;
                    return res;
                }
            };
            drop(opened_tx);
            res.subscribed = true;
            res.deliveries.reserve(256);
            let mut ids = Vec::new();
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    msg = ws.next() => {
                        let now = Instant::now();
                        match msg {
                            Some(Ok(Message::Text(t))) => {
                                let reply = backend.read_frame(t.as_str(), &mut ids);
                                res.deliveries.extend(ids.drain(..).map(|id| (id, now)));
                                if let Some(reply) = reply
                                    && ws.send(Message::text(reply)).await.is_err()
                                {
                                    res.lost = Some("pong-send".into());
                                    break;
                                }
                            }
                            Some(Ok(Message::Close(c))) => {
                                res.lost = Some(format!(
                                    "closed-{}",
                                    c.map_or(0, |c| u16::from(c.code))
                                ));
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
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            res
        }));
    }
    drop(opened_tx);
    let opened = collect_opened(opened_rx, args.connections, B::SCENARIO).await;
    let open_s = open_start.elapsed().as_secs_f64();
    let mut open_errors = Errors::default();
    let mut subscribers = vec![0u64; rooms];
    for (i, r) in &opened {
        match r {
            Ok(_) => subscribers[i % rooms] += 1,
            Err(e) => open_errors.add(e.clone()),
        }
    }
    let subscribed: u64 = subscribers.iter().sum();
    report::say(&format!(
        "{subscribed}/{} subscribed in {open_s:.1}s (errors: {})",
        args.connections,
        open_errors.brief()
    ));
    if subscribed == 0 {
        let _ = stop_tx.send(true);
        return Err(anyhow!(
            "no WebSocket could subscribe: {}",
            open_errors.brief()
        ));
    }

    // Send on a fixed schedule.
    let start = Instant::now() + Duration::from_millis(300);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let slots = Slots::new(start, args.rate);
    let ok_ctr = Arc::new(AtomicU64::new(0));
    let err_ctr = Arc::new(AtomicU64::new(0));
    let body: Arc<str> = "loadgen fanout message "
        .chars()
        .cycle()
        .take(args.body_bytes.clamp(1, 4000))
        .collect::<String>()
        .into();
    let mut senders = Vec::with_capacity(args.senders);
    for s in 0..args.senders {
        let mut conn = Conn::new(backend.http_target().clone(), args.timeout);
        let (slots, ok_ctr, err_ctr, backend, body) = (
            slots.clone(),
            ok_ctr.clone(),
            err_ctr.clone(),
            backend.clone(),
            body.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut r = SenderResult {
                sent: Vec::new(),
                errors: Errors::default(),
                hist: stats::new_histogram(),
                max_lag: Duration::ZERO,
            };
            if let Err(e) = conn.connect().await {
                r.errors.add(e.kind());
                return r;
            }
            let mut n = 0u64;
            loop {
                let (k, intended) = slots.take();
                if intended >= end {
                    break;
                }
                tokio::time::sleep_until(intended).await;
                let lag = Instant::now().saturating_duration_since(intended);
                let room = (k % rooms as u64) as usize;
                n += 1;
                let res = backend.send(&mut conn, s, n, room, &body).await;
                let accepted = Instant::now();
                let counted = intended >= measure_from;
                if counted {
                    r.max_lag = r.max_lag.max(lag);
                }
                match res {
                    Ok(id) => {
                        ok_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            stats::record(&mut r.hist, accepted - intended);
                        }
                        r.sent.push(Sent {
                            id,
                            room,
                            intended,
                            accepted,
                        });
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
        format!("{} {:.0}/s", B::SCENARIO, args.rate),
        start,
        args.warmup + args.duration,
        ok_ctr,
        err_ctr,
    );
    // The server: --server-pid, or the processes by name; the stack adds the backing ones.
    let server_names: Vec<&str> = if args.server_pid.is_empty() {
        B::SERVER_PROCESSES.to_vec()
    } else {
        Vec::new()
    };
    let stack_names: Vec<&str> = [&server_names[..], B::BACKING_PROCESSES].concat();
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = CpuSnapshot::take();
    let scan0 = ProcScan::take();
    let window_start = Instant::now();
    tokio::time::sleep_until(end).await;
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    let scan1 = ProcScan::take();
    let window = window_start.elapsed();
    let (server0, server1) = (
        scan0.select(&args.server_pid, &server_names),
        scan1.select(&args.server_pid, &server_names),
    );
    let (stack0, stack1) = (
        scan0.select(&args.server_pid, &stack_names),
        scan1.select(&args.server_pid, &stack_names),
    );
    let mut sent_all: Vec<Sent> = Vec::new();
    let mut send_errors = Errors::default();
    let mut hist_send = stats::new_histogram();
    let mut max_lag = Duration::ZERO;
    for t in senders {
        match t.await {
            Ok(r) => {
                sent_all.extend(r.sent);
                send_errors.merge(&r.errors);
                let _ = hist_send.add(&r.hist);
                max_lag = max_lag.max(r.max_lag);
            }
            Err(_) => send_errors.add("sender-task-panicked"),
        }
    }
    let _ = progress.await;
    tokio::time::sleep(args.drain).await;
    let _ = stop_tx.send(true);
    let mut listened = Vec::with_capacity(sockets.len());
    for t in sockets {
        if let Ok(l) = t.await {
            listened.push(l);
        }
    }

    // Match deliveries to sends.
    let by_id: HashMap<Uuid, &Sent> = sent_all.iter().map(|s| (s.id, s)).collect();
    let mut hist_accept = stats::new_histogram();
    let mut hist_scheduled = stats::new_histogram();
    let secs = args.duration.as_secs_f64().ceil().max(1.0) as usize;
    let mut per_sec: Vec<Histogram<u64>> = (0..secs).map(|_| stats::new_histogram()).collect();
    let (mut received, mut dups, mut early, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    let mut sockets_lost = Errors::default();
    let mut seen: HashSet<Uuid> = HashSet::new();
    for l in &listened {
        if let Some(why) = &l.lost {
            sockets_lost.add(why.clone());
        }
        if !l.subscribed {
            continue;
        }
        seen.clear();
        for (id, at) in &l.deliveries {
            let Some(s) = by_id.get(id) else {
                unknown += 1;
                continue;
            };
            if !seen.insert(*id) {
                dups += 1;
                continue;
            }
            if s.room != l.room {
                unknown += 1;
                continue;
            }
            if s.intended < measure_from {
                continue;
            }
            received += 1;
            if *at < s.accepted {
                early += 1;
            }
            let d = at.saturating_duration_since(s.accepted);
            stats::record(&mut hist_accept, d);
            stats::record(
                &mut hist_scheduled,
                at.saturating_duration_since(s.intended),
            );
            let sec = (s.intended - measure_from).as_secs() as usize;
            if let Some(h) = per_sec.get_mut(sec) {
                stats::record(h, d);
            }
        }
    }
    let measured: Vec<&Sent> = sent_all
        .iter()
        .filter(|s| s.intended >= measure_from)
        .collect();
    let expected: u64 = measured.iter().map(|s| subscribers[s.room]).sum();
    let ms = |us: u64| us as f64 / 1000.0;
    let per_second = per_sec
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                i as u64,
                h.len(),
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.max()),
            )
        })
        .collect();
    let server_label = if args.server_pid.is_empty() {
        server_names.join(" | ")
    } else {
        format!("--server-pid {:?}", args.server_pid)
    };
    let server_cpu = ServerCpu::between(&server0, &server1, window, received, server_label);
    let stack_cpu = (!B::BACKING_PROCESSES.is_empty())
        .then(|| {
            let label = if args.server_pid.is_empty() {
                stack_names.join(" | ")
            } else {
                format!(
                    "--server-pid {:?} + {}",
                    args.server_pid,
                    B::BACKING_PROCESSES.join(" | ")
                )
            };
            ServerCpu::between(&stack0, &stack1, window, received, label)
        })
        .flatten();
    let dur = args.duration.as_secs_f64().max(1e-9);
    Ok(FanoutReport {
        scenario: B::SCENARIO,
        target: args.target,
        accept_means: B::ACCEPT_MEANS,
        url: args.url.clone(),
        started_at,
        connections: args.connections,
        subscribed: subscribed as usize,
        open_errors,
        open_s,
        rooms,
        users: backend.users(),
        body_bytes: args.body_bytes,
        target_rate_per_s: args.rate,
        duration_s: dur,
        warmup_s: args.warmup.as_secs_f64(),
        drain_s: args.drain.as_secs_f64(),
        source_addresses: backend.source_addresses(),
        sent: measured.len() as u64,
        sent_per_s: measured.len() as f64 / dur,
        send_errors,
        max_send_lag_ms: max_lag.as_secs_f64() * 1000.0,
        deliveries_expected: expected,
        deliveries_received: received,
        deliveries_missing: expected.saturating_sub(received),
        deliveries_per_s: received as f64 / dur,
        duplicates: dups,
        delivered_before_accept: early,
        unknown_messages: unknown,
        sockets_lost,
        latency_accept_to_socket: Latency::of(&hist_accept),
        latency_scheduled_to_socket: Latency::of(&hist_scheduled),
        latency_send: Latency::of(&hist_send),
        distribution_accept_to_socket: stats::distribution(&hist_accept),
        distribution_scheduled_to_socket: stats::distribution(&hist_scheduled),
        per_second,
        cpu,
        server_cpu,
        stack_cpu,
        hist_accept,
        hist_scheduled,
    })
}

// ---------------------------------------------------------------------------
// Server CPU per delivery.
// ---------------------------------------------------------------------------

/// Clock ticks per second of the times in `/proc/PID/stat` (USER_HZ: 100 on Linux,
/// whatever the kernel's own HZ).
const USER_HZ: f64 = 100.0;

/// Every process's `(ppid, comm, utime + stime)`, by PID, from `/proc/PID/stat`
/// (one pass over /proc, so the figures selected from it are of one moment).
#[derive(Clone, Debug, Default)]
pub struct ProcScan(BTreeMap<u32, (u32, String, u64)>);

impl ProcScan {
    /// Empty where there is no `/proc`.
    pub fn take() -> Self {
        let mut all = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Self::default();
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((comm, ppid, ticks)) = parse_stat(&stat) {
                all.insert(pid, (ppid, comm.to_owned(), ticks));
            }
        }
        Self(all)
    }

    /// The processes `pids` and every process whose name (`/proc/PID/comm`) is in
    /// `names` (see [`is_named`]), with all their descendants.
    pub fn select(&self, pids: &[u32], names: &[&str]) -> ProcTimes {
        let mut chosen: HashSet<u32> = self
            .0
            .iter()
            .filter(|(pid, (_, comm, _))| {
                pids.contains(pid) || names.iter().any(|n| is_named(comm, n))
            })
            .map(|(pid, _)| *pid)
            .collect();
        // Descendants: repeat until no process's parent is newly chosen.
        loop {
            let before = chosen.len();
            for (pid, (ppid, _, _)) in &self.0 {
                if chosen.contains(ppid) {
                    chosen.insert(*pid);
                }
            }
            if chosen.len() == before {
                break;
            }
        }
        ProcTimes(
            self.0
                .iter()
                .filter(|(pid, _)| chosen.contains(pid))
                .map(|(pid, (_, comm, ticks))| (*pid, (comm.clone(), *ticks)))
                .collect(),
        )
    }
}

/// utime + stime (clock ticks) of a set of processes, by PID ([`ProcScan::select`]).
#[derive(Clone, Debug, Default)]
pub struct ProcTimes(BTreeMap<u32, (String, u64)>);

/// Whether a process's `comm` is `name`, or a versioned binary of it
/// (`nats-server-v2.` for `nats-server-v2.15.2`, `centrifugo-v6.9` for
/// `centrifugo-v6.9.1`: comm holds 15 bytes).
fn is_named(comm: &str, name: &str) -> bool {
    comm == name
        || comm
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with("-v"))
}

/// `(comm, ppid, utime + stime)` of a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<(&str, u32, u64)> {
    // pid (comm) state ppid … utime(14) stime(15); comm may hold spaces and parentheses.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let comm = stat.get(open + 1..close)?;
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid (4) is rest[1], utime (14) rest[11], stime (15) rest[12].
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, ppid, utime + stime))
}

/// CPU time of the server's processes in the measured window, per delivery.
#[derive(Clone, Debug, Serialize)]
pub struct ServerCpu {
    /// Which processes: the names looked for, or the `--server-pid`s given.
    pub what: String,
    /// Processes counted (at the end of the window), with their children.
    pub processes: usize,
    /// CPU seconds (utime + stime) used in the window, by process name.
    pub by_name_s: BTreeMap<String, f64>,
    /// CPU seconds (utime + stime) used in the window, in all.
    pub cpu_s: f64,
    /// `cpu_s` / the window's length: cores kept busy.
    pub cores: f64,
    /// CPU microseconds per delivery received (of the window's messages); None
    /// when nothing was delivered.
    pub us_per_delivery: Option<f64>,
}

impl ServerCpu {
    /// From two samples taken `window` apart. A process in the second sample only
    /// was started inside the window, so all its time counts; one that ended inside
    /// the window is not counted (its time is gone from /proc).
    pub(crate) fn between(
        before: &ProcTimes,
        after: &ProcTimes,
        window: Duration,
        deliveries: u64,
        what: String,
    ) -> Option<Self> {
        if after.0.is_empty() {
            report::say(&format!(
                "WARNING: no server process found ({what}): server CPU is not measured \
                 (pass --server-pid, on the server's machine)"
            ));
            return None;
        }
        let mut by_name_s: BTreeMap<String, f64> = BTreeMap::new();
        for (pid, (comm, ticks)) in &after.0 {
            let was = before.0.get(pid).map_or(0, |(_, t)| *t);
            *by_name_s.entry(comm.clone()).or_default() +=
                ticks.saturating_sub(was) as f64 / USER_HZ;
        }
        let cpu_s: f64 = by_name_s.values().sum();
        Some(Self {
            what,
            processes: after.0.len(),
            by_name_s,
            cpu_s,
            cores: cpu_s / window.as_secs_f64().max(1e-9),
            us_per_delivery: (deliveries > 0).then(|| cpu_s * 1e6 / deliveries as f64),
        })
    }

    /// `12.3 µs (0.85 cores)`.
    pub fn brief(&self) -> String {
        match self.us_per_delivery {
            Some(us) => format!("{us:.1} µs ({:.2} cores)", self.cores),
            None => format!("- ({:.2} cores)", self.cores),
        }
    }
}

/// The names of the three latencies: accept → socket, scheduled → socket, scheduled → accept.
fn latency_names(target: TargetKind) -> [&'static str; 3] {
    match target {
        TargetKind::Platform => [
            "send accepted → socket",
            "scheduled send → socket",
            "scheduled send → 201",
        ],
        TargetKind::Centrifugo => [
            "publish accepted (200) → socket",
            "scheduled publish → socket",
            "scheduled publish → 200",
        ],
    }
}

pub fn tables(r: &FanoutReport) -> (Table, Table) {
    let mut summary = Table::new(
        format!(
            "{} via {}: {} sockets ({} subscribed) over {} rooms, {}-byte bodies",
            r.scenario, r.url, r.connections, r.subscribed, r.rooms, r.body_bytes
        ),
        &[
            "target/s",
            "sent/s",
            "send errors",
            "expected",
            "received",
            "missing",
            "dup",
            "deliveries/s",
            "sockets lost",
            "server CPU/delivery",
            "+ PG, NATS CPU/delivery",
            "cpu (cores)",
        ],
    );
    summary.row(vec![
        f0(r.target_rate_per_s),
        f0(r.sent_per_s),
        r.send_errors.brief(),
        r.deliveries_expected.to_string(),
        r.deliveries_received.to_string(),
        r.deliveries_missing.to_string(),
        r.duplicates.to_string(),
        f0(r.deliveries_per_s),
        r.sockets_lost.brief(),
        r.server_cpu.as_ref().map_or("-".into(), ServerCpu::brief),
        r.stack_cpu.as_ref().map_or("-".into(), ServerCpu::brief),
        r.cpu.as_ref().map_or("-".into(), CpuUsage::brief),
    ]);
    let mut lat = Table::new(
        format!(
            "{} delivery latency ({:.0} msgs/s, {} sockets, {:.0}s measured)",
            r.scenario, r.target_rate_per_s, r.subscribed, r.duration_s
        ),
        &[
            "from → to",
            "count",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
        ],
    );
    let [accept, scheduled, send] = latency_names(r.target);
    for (name, l) in [
        (accept, &r.latency_accept_to_socket),
        (scheduled, &r.latency_scheduled_to_socket),
        (send, &r.latency_send),
    ] {
        lat.row(
            [
                vec![name.into(), l.count.to_string()],
                l.cells().to_vec(),
                vec![],
            ]
            .concat(),
        );
    }
    (summary, lat)
}

pub fn emit(r: &FanoutReport, out: &Path) -> anyhow::Result<()> {
    let (summary, lat) = tables(r);
    summary.print();
    lat.print();
    let status = match r.target {
        TargetKind::Platform => "201",
        TargetKind::Centrifugo => "200",
    };
    report::say(&format!(
        "open: {} subscribed in {:.1}s, open errors {}; max send lag {:.1} ms; \
         {} delivered before their {status} arrived; {} unknown message ids",
        r.subscribed,
        r.open_s,
        r.open_errors.brief(),
        r.max_send_lag_ms,
        r.delivered_before_accept,
        r.unknown_messages
    ));
    for c in [&r.server_cpu, &r.stack_cpu].into_iter().flatten() {
        let names: Vec<String> = c
            .by_name_s
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        report::say(&format!(
            "CPU of {}: {:.2} s in the window over {} process(es) ({}): {} per delivery",
            c.what,
            c.cpu_s,
            c.processes,
            names.join(", "),
            c.brief()
        ));
    }
    let name = r.scenario;
    let [accept, scheduled, _] = latency_names(r.target);
    let json = report::write_json(out, &format!("{name}.json"), r)?;
    let pct = out.join(format!("{name}-latency.svg"));
    report::plot_percentiles(
        &pct,
        &format!(
            "{name}: delivery latency, {:.0} msgs/s to {} sockets",
            r.target_rate_per_s, r.subscribed
        ),
        &[
            (accept.into(), &r.hist_accept),
            (scheduled.into(), &r.hist_scheduled),
        ],
    )?;
    let over = out.join(format!("{name}-latency-over-time.svg"));
    let pts = |f: fn(&(u64, u64, f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        r.per_second
            .iter()
            .filter(|p| p.1 > 0)
            .map(|p| (p.0 as f64, f(p)))
            .collect()
    };
    report::plot_xy(
        &over,
        &format!("{name}: {accept} latency per second"),
        "second of the measured window",
        "latency (ms)",
        &[
            ("p50".into(), pts(|p| p.2)),
            ("p99".into(), pts(|p| p.3)),
            ("max".into(), pts(|p| p.4)),
        ],
    )?;
    for f in [json, pct, over] {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_come_from_message_sent_frames_only() {
        let id = Uuid::new_v4();
        let f = json!({"type": "message_sent", "room_id": "r", "version": 3, "position": 9,
            "data": {"message_id": id, "seq": 1, "sender_id": Uuid::new_v4(), "body": "hi"}});
        assert_eq!(message_id_of(&f.to_string()), Some(id));
        let f = json!({"type": "message_edited", "data": {"message_id": id}});
        assert_eq!(message_id_of(&f.to_string()), None);
        assert_eq!(
            message_id_of(r#"{"type":"subscribed","room_id":"r","version":1}"#),
            None
        );
        assert_eq!(message_id_of("not json"), None);
    }

    #[test]
    fn proc_stat_lines_give_name_parent_and_cpu_ticks() {
        let line =
            "4242 (query api) S 17 4242 4242 0 -1 4194560 900 0 0 0 250 31 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some(("query api", 17, 281)));
        assert_eq!(parse_stat("garbage"), None);
        assert!(is_named("nats-server-v2.", "nats-server"));
        assert!(is_named("centrifugo-v6.9", "centrifugo"));
        assert!(is_named("chat", "chat"));
        assert!(!is_named("chatter", "chat"));
        assert!(!is_named("postgres-exporter", "postgres"));
    }

    #[test]
    fn server_cpu_counts_this_process_and_divides_by_deliveries() {
        let me = std::process::id();
        let before = ProcScan::take().select(&[me], &[]);
        assert!(before.0.contains_key(&me), "{before:?}");
        // Burn CPU until the process's ticks move (at most 10 s on a busy machine).
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        let after = loop {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let now = ProcScan::take().select(&[me], &[]);
            if now.0.get(&me).map(|p| p.1) > before.0.get(&me).map(|p| p.1)
                || t0.elapsed() > Duration::from_secs(10)
            {
                break now;
            }
        };
        let c = ServerCpu::between(&before, &after, t0.elapsed(), 1000, "me".into()).unwrap();
        assert!(c.cpu_s > 0.0 && c.cpu_s < 5.0, "{c:?}");
        let per = c.us_per_delivery.unwrap();
        assert!((per - c.cpu_s * 1e3).abs() < 1e-6, "{c:?}");
        assert!(
            ServerCpu::between(&before, &ProcTimes::default(), t0.elapsed(), 1, "x".into())
                .is_none()
        );
    }

    #[test]
    fn io_errors_become_short_keys() {
        let e = std::io::Error::from_raw_os_error(24);
        assert_eq!(io_key("connect", &e), "connect:EMFILE");
    }
}
