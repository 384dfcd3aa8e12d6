//! A client of the WebSocket live feed (`/v1/ws`).

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

use crate::wait::DEADLINE;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    /// Presence frames arrive whenever anyone sharing a room connects or leaves,
    /// interleaved with room traffic; only presence tests want them.
    pub watch_presence: bool,
}

/// What the next read gave.
#[derive(Debug)]
pub enum Got {
    Frame(Value),
    Closed(Option<(u16, String)>),
    Timeout,
}

impl Client {
    /// A client that receives every frame, presence included.
    pub async fn connect_watching_presence(addr: SocketAddr, token: &str) -> Client {
        Client {
            watch_presence: true,
            ..Self::connect(addr, token).await
        }
    }

    /// A client of `ws://addr/v1/ws` with the token in `Authorization`, that drops
    /// presence frames (see [`Client::watch_presence`]).
    pub async fn connect(addr: SocketAddr, token: &str) -> Client {
        let mut req = format!("ws://{addr}/v1/ws")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        Self::open(req).await
    }

    /// A client of whatever `req` asks for (a URL, or a request with its headers), that
    /// drops presence frames.
    pub async fn open(req: impl IntoClientRequest + Unpin) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect");
        Client {
            ws,
            watch_presence: false,
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    /// The next text frame (or close) before `deadline`.
    pub async fn next_until(&mut self, deadline: Instant) -> Got {
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Got::Timeout,
                Ok(None) => return Got::Closed(None),
                Ok(Some(Err(_))) => return Got::Closed(None),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let frame: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                    if frame["type"] == "presence" && !self.watch_presence {
                        continue;
                    }
                    return Got::Frame(frame);
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Got::Closed(c.map(|c| (u16::from(c.code), c.reason.to_string())));
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next text frame; panics on close or after [`DEADLINE`].
    pub async fn next(&mut self) -> Value {
        match self.next_until(Instant::now() + DEADLINE).await {
            Got::Frame(v) => v,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Frames until (and including) the first one matching `stop`.
    pub async fn until(&mut self, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            match self.next_until(deadline).await {
                Got::Frame(v) => {
                    let done = stop(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                other => panic!("waiting for a frame, got {other:?} after {seen:?}"),
            }
        }
    }

    /// Subscribes and returns every frame up to the `subscribed` (or `error`) answer.
    pub async fn subscribe(&mut self, room: Uuid, after_version: Option<i64>) -> Vec<Value> {
        let mut frame = json!({ "type": "subscribe", "room_id": room });
        if let Some(v) = after_version {
            frame["after_version"] = json!(v);
        }
        self.send(frame).await;
        self.until(|f| {
            (f["type"] == "subscribed" && f["room_id"] == room.to_string()) || f["type"] == "error"
        })
        .await
    }
}

/// Is this the `message_sent` frame of `body`?
pub fn is_message(f: &Value, body: &str) -> bool {
    f["type"] == "message_sent" && f["data"]["body"] == body
}
