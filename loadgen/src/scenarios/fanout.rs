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
use std::collections::{HashMap, HashSet};
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
}

#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    pub scenario: &'static str,
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
            ws_url: format!("ws://{}/v1/ws", auth.as_str()),
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
        req.headers_mut().insert(AUTHORIZATION, token.clone());
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
// The fanout run.
// ---------------------------------------------------------------------------

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
    let fx = Arc::new(setup(&args.url, args.users, args.rooms).await?);
    let dialer = Dialer::new(&args.url, !args.no_spread).await?;

    // Open and subscribe every socket.
    report::say(&format!(
        "opening {} WebSockets over {} rooms from {} source address(es)",
        args.connections,
        fx.rooms.len(),
        dialer.source_addresses()
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (opened_tx, opened_rx) = mpsc::channel::<Opened>(1024);
    let gate = Arc::new(Semaphore::new(args.open_concurrency.max(1)));
    let open_start = Instant::now();
    let mut sockets = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let (fx, dialer, gate, opened_tx) =
            (fx.clone(), dialer.clone(), gate.clone(), opened_tx.clone());
        let mut stop = stop_rx.clone();
        let timeout = args.timeout;
        sockets.push(tokio::spawn(async move {
            let room = i % fx.rooms.len();
            let mut res = Listened {
                room,
                subscribed: false,
                deliveries: Vec::new(),
                lost: None,
            };
            let token = &fx.listeners[i % fx.listeners.len()];
            let ws = open_subscribed(&dialer, &gate, i, token, &fx.rooms[room], timeout).await;
            let mut ws = match ws {
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
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    msg = ws.next() => {
                        let now = Instant::now();
                        match msg {
                            Some(Ok(Message::Text(t))) => {
                                if let Some(id) = message_id_of(t.as_str()) {
                                    res.deliveries.push((id, now));
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
    let opened = collect_opened(opened_rx, args.connections, "fanout open").await;
    let open_s = open_start.elapsed().as_secs_f64();
    let mut open_errors = Errors::default();
    let mut subscribers = vec![0u64; fx.rooms.len()];
    for (i, r) in &opened {
        match r {
            Ok(_) => subscribers[i % fx.rooms.len()] += 1,
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
    let body: String = "loadgen fanout message "
        .chars()
        .cycle()
        .take(args.body_bytes.clamp(1, 4000))
        .collect();
    let paths: Arc<Vec<String>> = Arc::new(
        fx.rooms
            .iter()
            .map(|r| format!("/v1/rooms/{r}/messages"))
            .collect(),
    );
    let mut senders = Vec::with_capacity(args.senders);
    for s in 0..args.senders {
        let mut conn = Conn::new(fx.target.clone(), args.timeout);
        let (slots, ok_ctr, err_ctr, paths) = (
            slots.clone(),
            ok_ctr.clone(),
            err_ctr.clone(),
            paths.clone(),
        );
        let token = fx.sender.clone();
        let prefix = format!("{}-f{s}", fx.run_id);
        let body = body.clone();
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
                let room = (k % paths.len() as u64) as usize;
                n += 1;
                let payload = json!({"client_msg_id": format!("{prefix}-{n}"), "body": body});
                let Ok(bytes) = serde_json::to_vec(&payload) else {
                    r.errors.add("encode");
                    continue;
                };
                let res = conn
                    .post_json(&paths[room], Some(&token), Bytes::from(bytes))
                    .await;
                let accepted = Instant::now();
                let counted = intended >= measure_from;
                if counted {
                    r.max_lag = r.max_lag.max(lag);
                }
                let id = match res {
                    Ok((st, b)) if st.is_success() => serde_json::from_slice::<Value>(&b)
                        .ok()
                        .and_then(|v| v.get("message_id")?.as_str()?.parse::<Uuid>().ok())
                        .ok_or_else(|| "no-message-id".to_owned()),
                    Ok((st, _)) => Err(st.as_u16().to_string()),
                    Err(e) => Err(e.kind().to_owned()),
                };
                match id {
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
        format!("fanout {:.0}/s", args.rate),
        start,
        args.warmup + args.duration,
        ok_ctr,
        err_ctr,
    );
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = CpuSnapshot::take();
    tokio::time::sleep_until(end).await;
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
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
    let dur = args.duration.as_secs_f64().max(1e-9);
    Ok(FanoutReport {
        scenario: "fanout",
        url: args.url.clone(),
        started_at,
        connections: args.connections,
        subscribed: subscribed as usize,
        open_errors,
        open_s,
        rooms: fx.rooms.len(),
        users: fx.listeners.len(),
        body_bytes: args.body_bytes,
        target_rate_per_s: args.rate,
        duration_s: dur,
        warmup_s: args.warmup.as_secs_f64(),
        drain_s: args.drain.as_secs_f64(),
        source_addresses: dialer.source_addresses(),
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
        hist_accept,
        hist_scheduled,
    })
}

pub fn tables(r: &FanoutReport) -> (Table, Table) {
    let mut summary = Table::new(
        format!(
            "fanout via {}: {} sockets ({} subscribed) over {} rooms, {}-byte bodies",
            r.url, r.connections, r.subscribed, r.rooms, r.body_bytes
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
        r.cpu.as_ref().map_or("-".into(), CpuUsage::brief),
    ]);
    let mut lat = Table::new(
        format!(
            "fanout delivery latency ({:.0} msgs/s, {} sockets, {:.0}s measured)",
            r.target_rate_per_s, r.subscribed, r.duration_s
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
    for (name, l) in [
        ("send accepted → socket", &r.latency_accept_to_socket),
        ("scheduled send → socket", &r.latency_scheduled_to_socket),
        ("scheduled send → 201", &r.latency_send),
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
    report::say(&format!(
        "open: {} subscribed in {:.1}s, open errors {}; max send lag {:.1} ms; \
         {} delivered before their 201 arrived; {} unknown message ids",
        r.subscribed,
        r.open_s,
        r.open_errors.brief(),
        r.max_send_lag_ms,
        r.delivered_before_accept,
        r.unknown_messages
    ));
    let json = report::write_json(out, "fanout.json", r)?;
    let pct = out.join("fanout-latency.svg");
    report::plot_percentiles(
        &pct,
        &format!(
            "fanout: delivery latency, {:.0} msgs/s to {} sockets",
            r.target_rate_per_s, r.subscribed
        ),
        &[
            ("send accepted → socket".into(), &r.hist_accept),
            ("scheduled send → socket".into(), &r.hist_scheduled),
        ],
    )?;
    let over = out.join("fanout-latency-over-time.svg");
    let pts = |f: fn(&(u64, u64, f64, f64, f64)) -> f64| -> Vec<(f64, f64)> {
        r.per_second
            .iter()
            .filter(|p| p.1 > 0)
            .map(|p| (p.0 as f64, f(p)))
            .collect()
    };
    report::plot_xy(
        &over,
        "fanout: send accepted → socket latency per second",
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
    fn io_errors_become_short_keys() {
        let e = std::io::Error::from_raw_os_error(24);
        assert_eq!(io_key("connect", &e), "connect:EMFILE");
    }
}
