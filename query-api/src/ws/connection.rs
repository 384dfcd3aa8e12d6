//! `GET /v1/ws`: authentication and `Origin` check before the upgrade, then a
//! writer (the connection's own task) and a reader task per socket that end together.
//!
//! The writer takes frames from two queues: `direct` (replies, back-fill; the
//! reader awaits room in it, so it applies back-pressure to the reader only) and
//! `live` (the hub's fan-out; bounded, never awaited — full means "slow consumer").
//! `direct` is always drained first, which keeps a back-fill ahead of the live
//! events that follow it.

use crate::state::AppState;
use crate::ws::hub::{Close, ConnId, Drain, Hub, Kill};
use crate::ws::membership;
use crate::ws::protocol::{ClientFrame, Frame, LiveEvent, parse_client};
use crate::ws::{Live, MAX_BACKFILL};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eventlog::EventStore as _;
use events::{RoomId, UserId};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use http_kit::error::ApiError;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Replies and back-fill frames queued per connection.
const DIRECT_FRAMES: usize = 16;
/// Events read from the log per back-fill query.
const BACKFILL_PAGE: i64 = 250;
/// Initial read buffer per socket (see `handler`).
const READ_BUFFER: usize = 1024;
/// How long a close frame may take to reach a client before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Live frames already queued that go out with the one the writer woke for, in one write
/// and one flush (a burst into a socket costs one syscall, not one per frame).
const COALESCE: usize = 64;

const TOKEN_EXPIRED: Close = Close {
    code: 4001,
    reason: "token expired",
    label: "token_expired",
};
const PING_TIMEOUT: Close = Close {
    code: 1001,
    reason: "ping timeout",
    label: "ping_timeout",
};
const TOO_BIG: Close = Close {
    code: 1009,
    reason: "message too big",
    label: "too_big",
};
const INVALID_UTF8: Close = Close {
    code: 1007,
    reason: "invalid UTF-8",
    label: "invalid_payload",
};
const PROTOCOL: Close = Close {
    code: 1002,
    reason: "protocol error",
    label: "protocol_error",
};

pub async fn handler(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    let token = bearer.or_else(|| {
        query
            .ok()
            .and_then(|Query(q)| q.get("access_token").cloned())
    });
    let Some(token) = token else {
        return ApiError::unauthorized("unauthorized", "missing bearer token").into_response();
    };
    let claims = match st.jwt.verify_access(&token) {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !same_origin(origin, host) && !origin_allowed(&st.settings.ws_allowed_origins, origin) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "this Origin may not open the WebSocket",
            )
            .into_response();
        }
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                rejection.status(),
                "websocket_upgrade_required",
                rejection.body_text(),
            )
            .into_response();
        }
    };
    let max = st.settings.ws_max_message_bytes;
    let user = UserId(claims.sub);
    let exp = claims.exp;
    // tungstenite's defaults are 128 KiB per buffer: far too much for many sockets. Client
    // frames are small (subscribe, typing, ping); a larger one grows the buffer as needed, up
    // to the message limit. The write buffer is only allocated once something is written.
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(4 * 1024)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(st, socket, user, exp))
}

/// The page was served by this very address: the `Origin`'s host and port (after an
/// `http://` or `https://` scheme) are the request's `Host`. This is how the web client
/// served at `/` opens its socket, whatever name or port the platform is reached by.
pub fn same_origin(origin: &str, host: &str) -> bool {
    let authority = origin
        .trim()
        .strip_prefix("http://")
        .or_else(|| origin.trim().strip_prefix("https://"));
    matches!(authority, Some(a) if !a.is_empty() && !a.contains('/') && a.eq_ignore_ascii_case(host.trim()))
}

/// `*` allows any origin; otherwise an exact (case-insensitive) match of one of
/// the comma-separated entries.
pub fn origin_allowed(list: &str, origin: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin.trim()))
}

/// Time of the last frame received, as milliseconds since `base`.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

struct Ctx {
    metrics: crate::metrics::Metrics,
    /// Frames each socket may send.
    frames: Arc<http_kit::rate_limit::Limit<ConnId>>,
    live: Live,
    hub: Arc<Hub>,
    id: ConnId,
    user: UserId,
    direct: flume::Sender<Frame>,
}

async fn serve(st: AppState, socket: WebSocket, user: UserId, exp: i64) {
    let live = st.live.clone();
    let hub = live.hub().clone();
    let reg = hub.register(user);
    let id = reg.id;
    st.metrics.ws_connections.inc();
    if reg.first_for_user {
        live.presence().local_online(user);
        live.notifier().connect(user);
    }
    let (sink, stream) = socket.split();
    // flume, not tokio's mpsc, for this cold queue: an idle one costs ~150 bytes, not ~900.
    let (direct_tx, direct_rx) = flume::bounded(DIRECT_FRAMES);
    let activity = Arc::new(Activity {
        base: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let ping = Duration::from_secs(st.settings.ws_ping_secs.max(1));
    let expires_in = Duration::from_secs(
        u64::try_from(exp.saturating_sub(chrono::Utc::now().timestamp())).unwrap_or(0),
    );
    // The writer runs inside this task (one task fewer per socket); the reader is its own
    // task so a reply it waits to queue never blocks the writer that drains the queue.
    let writer = write_loop(
        sink,
        reg.live,
        direct_rx,
        reg.kill,
        Instant::now() + expires_in,
        ping,
        activity.clone(),
        st.metrics.clone(),
    );
    tokio::pin!(writer);
    let ctx = Ctx {
        metrics: st.metrics.clone(),
        frames: st.ws_frames.clone(),
        live: live.clone(),
        hub: hub.clone(),
        id,
        user,
        direct: direct_tx,
    };
    let mut reader = tokio::spawn(read_loop(ctx, stream, activity));
    tokio::select! {
        () = &mut writer => reader.abort(),
        _ = &mut reader => {
            // The reader is done (client closed, or a protocol error asked the
            // writer to close): give the writer a moment to send its close frame.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT * 2, &mut writer).await;
        }
    }
    st.metrics.ws_connections.dec();
    if hub.unregister(id) {
        live.presence().local_offline(user);
        live.notifier().disconnect(user);
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut live: mpsc::Receiver<Frame>,
    direct: flume::Receiver<Frame>,
    kill: Arc<Kill>,
    expires_at: Instant,
    ping_every: Duration,
    activity: Arc<Activity>,
    metrics: crate::metrics::Metrics,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let expiry = tokio::time::sleep_until(expires_at);
    tokio::pin!(expiry);
    let close = loop {
        let msg = tokio::select! {
            biased;
            c = kill.requested() => break Some(c),
            _ = &mut expiry => break Some(TOKEN_EXPIRED),
            _ = ping.tick() => {
                if activity.idle() > ping_every * 3 {
                    break Some(PING_TIMEOUT);
                }
                Message::Ping(bytes::Bytes::new())
            }
            frame = direct.recv_async() => match frame {
                Ok(f) => frame_message(&f, &metrics),
                // The reader ended (the client closed, or went away): finish
                // the closing handshake if the client is still there.
                Err(_) => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
                    break None;
                }
            },
            frame = live.recv() => match frame {
                Some(f) => frame_message(&f, &metrics),
                None => break None,
            },
        };
        // Whatever else is queued goes in the same write, then one flush.
        let write = async {
            sink.feed(msg).await?;
            for _ in 0..COALESCE {
                let Ok(f) = live.try_recv() else { break };
                sink.feed(frame_message(&f, &metrics)).await?;
            }
            sink.flush().await
        };
        // A write stuck on a client that does not read must not outlive a kill.
        tokio::select! {
            biased;
            c = kill.requested() => break Some(c),
            _ = &mut expiry => break Some(TOKEN_EXPIRED),
            sent = write => if sent.is_err() { break None },
        }
    };
    if let Some(c) = close {
        metrics.ws_closed.with_label_values(&[c.label]).inc();
        let frame = Message::Close(Some(CloseFrame {
            code: c.code,
            reason: Utf8Bytes::from_static(c.reason),
        }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
    }
}

fn frame_message(frame: &Frame, metrics: &crate::metrics::Metrics) -> Message {
    metrics.ws_frames.with_label_values(&[frame.kind]).inc();
    Message::Text(frame.text.clone())
}

async fn read_loop(ctx: Ctx, mut stream: SplitStream<WebSocket>, activity: Arc<Activity>) {
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket read failed");
                // `None`: the peer is gone (reset, EOF), nobody to tell.
                if let Some(close) = read_error(&e) {
                    ctx.hub.close(ctx.id, close);
                }
                return;
            }
        };
        activity.touch();
        if matches!(msg, Message::Text(_) | Message::Binary(_))
            && let Err(wait) = ctx.frames.try_take(&ctx.id)
        {
            // Dropped, and said so: a client that keeps on is told each time, and its
            // queue of answers (bounded) closes it if it does not read them either.
            let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            let frame = Frame::error(
                "rate_limited",
                &format!("too many frames: this one was dropped; retry in {wait_ms} ms"),
            );
            if reply(&ctx, frame).await.is_err() {
                return;
            }
            continue;
        }
        let handled = match msg {
            // Boxed: a subscribe's back-fill future is large, and an idle socket's reader
            // would otherwise carry its space for as long as it lives.
            Message::Text(text) => Box::pin(handle_text(&ctx, text.as_str())).await,
            Message::Binary(_) => {
                reply(
                    &ctx,
                    Frame::error("invalid_frame", "binary frames are not supported"),
                )
                .await
            }
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            Message::Close(_) => return,
        };
        if handled.is_err() {
            return;
        }
    }
}

/// The close a read error calls for; `None` when the peer is simply gone.
fn read_error(e: &axum::Error) -> Option<Close> {
    let mut texts = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        texts.push(err.to_string());
        source = err.source();
    }
    let any = |needle: &str| texts.iter().any(|t| t.contains(needle));
    if any("Space limit exceeded") || any("Message too long") || any("too long") {
        Some(TOO_BIG)
    } else if any("without closing handshake") || any("IO error") || any("closed") {
        None
    } else if any("UTF-8") || any("utf-8") || any("Utf8") {
        // RFC 6455 §7.4.1: data inconsistent with the message type (a text frame that is
        // not UTF-8) is 1007, not a protocol error.
        Some(INVALID_UTF8)
    } else if any("protocol error") {
        Some(PROTOCOL)
    } else {
        None
    }
}

/// The connection is gone.
struct Gone;

async fn reply(ctx: &Ctx, frame: Frame) -> Result<(), Gone> {
    ctx.direct.send_async(frame).await.map_err(|_| Gone)
}

async fn handle_text(ctx: &Ctx, text: &str) -> Result<(), Gone> {
    let parsed = parse_client(text);
    let kind = match &parsed {
        Ok(ClientFrame::Subscribe { .. }) => "subscribe",
        Ok(ClientFrame::Unsubscribe { .. }) => "unsubscribe",
        Ok(ClientFrame::Typing { .. }) => "typing",
        Ok(ClientFrame::Ping) => "ping",
        Err(_) => "invalid",
    };
    ctx.metrics
        .ws_frames_received
        .with_label_values(&[kind])
        .inc();
    if let Ok(ClientFrame::Subscribe {
        after_version: Some(_),
        ..
    }) = &parsed
    {
        ctx.metrics.ws_resumes.inc();
    }
    match parsed {
        Err((code, message)) => reply(ctx, Frame::error(code, &message)).await,
        Ok(ClientFrame::Ping) => reply(ctx, Frame::pong()).await,
        Ok(ClientFrame::Subscribe {
            room_id,
            after_version,
            epoch,
        }) => subscribe(ctx, room_id, after_version, epoch).await,
        Ok(ClientFrame::Unsubscribe { room_id }) => {
            ctx.hub.unsubscribe(ctx.id, room_id);
            Ok(())
        }
        Ok(ClientFrame::Typing { room_id }) => typing(ctx, room_id).await,
    }
}

/// Subscribes; a resume (`after_version`) whose `client_epoch` is not the current epoch,
/// or that is too far behind, gets `resync` instead of a back-fill.
async fn subscribe(
    ctx: &Ctx,
    room_id: RoomId,
    after_version: Option<i64>,
    client_epoch: Option<i64>,
) -> Result<(), Gone> {
    let (from, room_version, expired_up_to, epoch) = match ctx
        .hub
        .begin_subscribe(ctx.id, room_id, after_version)
        .await
    {
        crate::ws::hub::Begin::Started {
            from,
            room_version,
            expired_up_to,
            epoch,
        } => (from, room_version, expired_up_to, epoch),
        crate::ws::hub::Begin::Refused { code, message } => {
            return reply(ctx, Frame::room_error(room_id, code, message)).await;
        }
        crate::ws::hub::Begin::Unavailable => {
            return reply(
                ctx,
                Frame::room_error(room_id, "unavailable", "try again later"),
            )
            .await;
        }
    };
    let mut last = from;
    if after_version.is_some() {
        // What the client holds was read from another build of the read models: a
        // back-fill of the log would patch the wrong state.
        if client_epoch.is_some_and(|e| e != epoch) {
            reply(ctx, Frame::resync(room_id, "epoch")).await?;
            last = room_version;
        } else if room_version.saturating_sub(from) > MAX_BACKFILL {
            reply(ctx, Frame::resync(room_id, "too_far_behind")).await?;
            last = room_version;
        } else {
            match backfill(ctx, room_id, from, expired_up_to).await? {
                Backfilled::Upto(v) => last = v,
                Backfilled::Removed => {
                    ctx.hub.unsubscribe(ctx.id, room_id);
                    return Ok(());
                }
                Backfilled::Failed => {
                    ctx.hub.unsubscribe(ctx.id, room_id);
                    return reply(
                        ctx,
                        Frame::room_error(room_id, "unavailable", "try again later"),
                    )
                    .await;
                }
            }
        }
    }
    reply(ctx, Frame::subscribed(room_id, last, epoch)).await?;
    loop {
        match ctx.hub.drain(ctx.id, room_id, last) {
            Drain::Frames { frames, last: l } => {
                for f in frames {
                    reply(ctx, f).await?;
                }
                last = l;
            }
            Drain::Resync { version, reason } => {
                reply(ctx, Frame::resync(room_id, reason)).await?;
                last = version;
            }
            Drain::Live | Drain::Gone => return Ok(()),
        }
    }
}

enum Backfilled {
    Upto(i64),
    /// The back-fill reached this user's own leave or kick (sent; nothing after it).
    Removed,
    Failed,
}

/// Sends the room's events after `from` from the log, in version order, up to
/// the end of the log or this user's own removal. Events about messages at or below
/// `expired_up_to` (as the hub's state of the room says when the subscription began; a later
/// expiry reaches the client live after the back-fill) are sent as `hidden` frames.
async fn backfill(
    ctx: &Ctx,
    room_id: RoomId,
    from: i64,
    expired_up_to: u64,
) -> Result<Backfilled, Gone> {
    let stream_id = room_id.stream_id();
    let mut last = from;
    let mut sent: i64 = 0;
    loop {
        let mut page = match ctx
            .live
            .log()
            .read_stream(&stream_id, last, BACKFILL_PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, %room_id, "back-fill read failed");
                return Ok(Backfilled::Failed);
            }
        };
        if let Err(e) = ctx.live.keyring().open_events(&mut page).await {
            tracing::warn!(error = %e, %room_id, "back-fill cannot open its events");
            return Ok(Backfilled::Failed);
        }
        let n = page.len();
        for rec in &page {
            let ev = match LiveEvent::decode(rec) {
                Ok(Some(ev)) => ev,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable event in back-fill");
                    return Ok(Backfilled::Failed);
                }
            };
            if ev.version <= last {
                continue;
            }
            let frame = if ev.event.concerns_expired(expired_up_to) {
                ev.expired_frame().relabel("backfill")
            } else {
                ev.frame_for(ctx.user).relabel("backfill")
            };
            reply(ctx, frame).await?;
            last = ev.version;
            sent += 1;
            if ev.removes() == Some(ctx.user) {
                return Ok(Backfilled::Removed);
            }
        }
        if i64::try_from(n).unwrap_or(0) < BACKFILL_PAGE || sent > MAX_BACKFILL * 4 {
            return Ok(Backfilled::Upto(last));
        }
    }
}

async fn typing(ctx: &Ctx, room_id: RoomId) -> Result<(), Gone> {
    let member = match ctx.hub.is_member(room_id, ctx.user) {
        Some(m) => Ok(m),
        None => membership::load(ctx.live.log(), room_id)
            .await
            .map(|s| s.state.is_member(ctx.user))
            .map_err(|e| tracing::warn!(error = %e, "typing membership check failed")),
    };
    match member {
        Ok(true) => {
            let payload = json!({ "type": "typing", "room_id": room_id, "user_id": ctx.user });
            if let Err(e) = ctx.live.publish_ephemeral(room_id, &payload).await {
                tracing::warn!(error = %e, "typing publish failed");
                return reply(
                    ctx,
                    Frame::room_error(room_id, "unavailable", "try again later"),
                )
                .await;
            }
            Ok(())
        }
        Ok(false) => {
            // Same answer as a subscribe: a private room is not revealed.
            let state = membership::load(ctx.live.log(), room_id).await;
            let (code, message) = match &state {
                Ok(s) => membership::refusal(&s.state),
                Err(_) => ("room_not_found", "room not found"),
            };
            reply(ctx, Frame::room_error(room_id, code, message)).await
        }
        Err(()) => {
            reply(
                ctx,
                Frame::room_error(room_id, "unavailable", "try again later"),
            )
            .await
        }
    }
}
