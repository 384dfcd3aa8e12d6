//! A live client of the query API's WebSocket feed, as the web client is: subscribed to
//! every room of the load, reconnecting (and subscribing again) whenever its socket
//! closes. It records when it first saw each message (by the `client_msg_id` the load puts
//! in every body), so a scenario can tell how soon the live feed delivered again after a
//! fault.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

/// The `client_msg_id` in a message body of the load (`m <client_msg_id> <n>`).
pub fn client_msg_id(frame: &Value) -> Option<&str> {
    if frame["type"] != "message_sent" {
        return None;
    }
    frame["data"]["body"].as_str()?.split(' ').nth(1)
}

/// Opens a socket to the feed with `token`.
pub async fn connect(
    addr: SocketAddr,
    token: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let mut req = format!("ws://{addr}/v1/ws").into_client_request()?;
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await??;
    Ok(ws)
}

/// How a watcher signs in: its own session (a login), so it never races a writer of the
/// load for the same rotating refresh token.
pub struct Login {
    pub http: reqwest::Client,
    /// The command API's base URL.
    pub command: String,
    pub username: String,
}

impl Login {
    /// A fresh access token.
    async fn token(&self) -> anyhow::Result<String> {
        let body = json!({ "username": self.username, "password": crate::load::PASSWORD });
        let res: Value = self
            .http
            .post(format!("{}/v1/auth/login", self.command))
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(res["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no access_token in {res}"))?
            .to_owned())
    }
}

/// A watching client; stops when dropped.
pub struct Watcher {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    pub reconnects: Arc<std::sync::atomic::AtomicU64>,
    /// Why each of its sockets ended, in order: the server's close code and reason, or
    /// what the client saw instead.
    ends: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Watches `rooms` as `login`'s user, signing in again whenever the feed says its
    /// token expired (4001) or a connection is refused, as a client would refresh.
    pub fn start(addr: SocketAddr, login: Login, rooms: Vec<Uuid>) -> Watcher {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let reconnects = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let ends = Arc::new(Mutex::new(Vec::new()));
        let (s, r, e) = (seen.clone(), reconnects.clone(), ends.clone());
        let task = tokio::spawn(async move {
            let mut token = None;
            loop {
                let mut end = "could not connect".to_owned();
                if token.is_none() {
                    match login.token().await {
                        Ok(t) => token = Some(t),
                        Err(err) => end = format!("could not sign in: {err}"),
                    }
                }
                let socket = match &token {
                    Some(t) => connect(addr, t).await.ok(),
                    None => None,
                };
                if socket.is_none() {
                    token = None;
                }
                if let Some(mut ws) = socket {
                    let mut ok = true;
                    for room in &rooms {
                        let frame = json!({ "type": "subscribe", "room_id": room });
                        ok &= ws
                            .send(Message::Text(frame.to_string().into()))
                            .await
                            .is_ok();
                    }
                    while ok {
                        ok = match ws.next().await {
                            Some(Ok(Message::Text(t))) => {
                                let Ok(frame) = serde_json::from_str::<Value>(t.as_str()) else {
                                    continue;
                                };
                                if let Some(id) = client_msg_id(&frame)
                                    && let Ok(mut seen) = s.lock()
                                {
                                    seen.entry(id.to_owned()).or_insert_with(Instant::now);
                                }
                                true
                            }
                            Some(Ok(Message::Close(close))) => {
                                if close.as_ref().is_some_and(|c| u16::from(c.code) == 4001) {
                                    token = None;
                                }
                                end = close.map_or("closed without a code".to_owned(), |c| {
                                    format!("closed {} ({})", u16::from(c.code), c.reason)
                                });
                                false
                            }
                            Some(Ok(_)) => true,
                            Some(Err(err)) => {
                                end = format!("failed: {err}");
                                false
                            }
                            None => {
                                end = "ended without a close frame".to_owned();
                                false
                            }
                        };
                    }
                }
                if let Ok(mut ends) = e.lock() {
                    ends.push(end);
                }
                r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Watcher {
            seen,
            reconnects,
            ends,
            task,
        }
    }

    /// Why its sockets ended so far (see [`Watcher::ends`]'s field).
    pub fn ends(&self) -> Vec<String> {
        self.ends.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// When the watcher last saw a message it had not seen before.
    pub fn last_seen(&self) -> Option<Instant> {
        self.seen.lock().ok()?.values().max().copied()
    }

    /// When the watcher first saw the message with this `client_msg_id`.
    pub fn seen(&self, client_msg_id: &str) -> Option<Instant> {
        self.seen.lock().ok()?.get(client_msg_id).copied()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
