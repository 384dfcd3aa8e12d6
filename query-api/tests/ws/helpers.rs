//! Spawns the real command-api (with its relay) and query-api nodes against a
//! database and a JetStream stream made for the test, and talks to them over
//! HTTP and WebSockets.

use eventlog::testing::{TestDb, TestNats};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// How long any single expected thing may take.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub struct Platform {
    pub cmd_base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub nats: TestNats,
    pub jwt_secret: String,
    pub query: QueryNode,
    cmd_stop: Option<tokio::sync::oneshot::Sender<()>>,
    cmd_server: Option<tokio::task::JoinHandle<()>>,
}

pub struct QueryNode {
    pub addr: SocketAddr,
    pub state: query_api::state::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl QueryNode {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
    }

    pub fn live(&self) -> &query_api::ws::Live {
        &self.state.live
    }

    pub fn closed(&self, reason: &str) -> u64 {
        self.state
            .metrics
            .ws_closed
            .with_label_values(&[reason])
            .get()
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

impl Platform {
    pub async fn spawn() -> Platform {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(
        configure: impl Fn(&mut query_api::configuration::Settings),
    ) -> Platform {
        let db = TestDb::new().await.expect("test database");
        let nats = TestNats::new().await.expect("test nats");
        let jwt_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let mut settings =
            command_api::configuration::Settings::from_defaults().expect("default settings");
        settings.service.listen = "127.0.0.1:0".into();
        settings.service.database_url = db.url.clone().into();
        settings.create_database = false;
        settings.service.nats_url = eventlog::testing::nats_url().into();
        settings.service.stream_name = nats.stream_name.clone();
        settings.service.subject_prefix = nats.prefix.clone();
        settings.tokens.jwt_secret = jwt_secret.clone().into();
        settings.hash_concurrency = 2;
        let app = command_api::startup::Application::build(settings)
            .await
            .expect("build command-api");
        let addr = app.local_addr().expect("local addr");
        let (cmd_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cmd_server = tokio::spawn(async move {
            let _ = app
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        projector::migrate(&db.pool)
            .await
            .expect("read-model migrations");
        let mut qs = query_settings_for(&db, &nats, &jwt_secret);
        configure(&mut qs);
        let query = start_query(qs).await;
        Platform {
            cmd_base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            db,
            nats,
            jwt_secret,
            query,
            cmd_stop: Some(cmd_stop),
            cmd_server: Some(cmd_server),
        }
    }

    /// query-api settings for this platform (listen on port 0).
    pub fn query_settings(&self) -> query_api::configuration::Settings {
        query_settings_for(&self.db, &self.nats, &self.jwt_secret)
    }

    pub async fn cleanup(self) {
        let Platform {
            query,
            mut cmd_stop,
            mut cmd_server,
            nats,
            ..
        } = self;
        query.stop().await;
        if let Some(stop) = cmd_stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = cmd_server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
        nats.cleanup().await;
    }

    /// Brings the read models up to the log (for presence audiences).
    pub async fn project(&self) {
        projector::catch_up_from_log(&self.db.pool, &self.db.pool)
            .await
            .expect("projector catch-up");
    }

    pub async fn post(&self, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{}", self.cmd_base, path))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn register(&self) -> User {
        let name = format!("u{}", &Uuid::new_v4().simple().to_string()[..12]);
        let res = self
            .http
            .post(format!("{}/v1/auth/register", self.cmd_base))
            .json(&json!({ "username": name, "password": "correct horse battery" }))
            .send()
            .await
            .expect("register");
        assert_eq!(res.status().as_u16(), 201);
        let body: Value = res.json().await.expect("json");
        User {
            id: body["user_id"].as_str().expect("id").parse().expect("uuid"),
            token: body["access_token"].as_str().expect("token").to_owned(),
        }
    }

    pub async fn create_room(&self, owner: &User, visibility: &str) -> Uuid {
        let (status, body) = self
            .post(
                "/v1/rooms",
                &owner.token,
                Some(json!({ "name": "room", "visibility": visibility })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["room_id"]
            .as_str()
            .expect("room_id")
            .parse()
            .expect("uuid")
    }

    pub async fn join(&self, user: &User, room: Uuid) {
        let (status, body) = self
            .post(&format!("/v1/rooms/{room}/join"), &user.token, None)
            .await;
        assert!(status == 200 || status == 201, "join: {status} {body}");
    }

    pub async fn kick(&self, owner: &User, user: &User, room: Uuid) {
        let res = self
            .http
            .delete(format!(
                "{}/v1/rooms/{room}/members/{}",
                self.cmd_base, user.id
            ))
            .bearer_auth(&owner.token)
            .send()
            .await
            .expect("kick");
        assert!(res.status().is_success(), "kick: {}", res.status());
    }

    /// Sends a message; returns the response body (`message_id`, `seq`, `position`).
    pub async fn send(&self, user: &User, room: Uuid, body: &str) -> Value {
        let (status, res) = self
            .post(
                &format!("/v1/rooms/{room}/messages"),
                &user.token,
                Some(json!({ "client_msg_id": Uuid::new_v4().to_string(), "body": body })),
            )
            .await;
        assert_eq!(status, 201, "send: {res}");
        res
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    /// The room-stream version of the event at `position`.
    pub async fn version_at(&self, position: i64) -> i64 {
        sqlx::query_scalar("SELECT version FROM events WHERE position = $1")
            .bind(position)
            .fetch_one(&self.db.pool)
            .await
            .expect("version")
    }
}

fn query_settings_for(
    db: &TestDb,
    nats: &TestNats,
    jwt_secret: &str,
) -> query_api::configuration::Settings {
    let mut s = query_api::configuration::Settings::from_defaults().expect("defaults");
    s.service.listen = "127.0.0.1:0".into();
    s.service.database_url = db.url.clone().into();
    s.service.db_max_connections = 8;
    s.service.nats_url = eventlog::testing::nats_url().into();
    s.service.stream_name = nats.stream_name.clone();
    s.service.subject_prefix = nats.prefix.clone();
    s.tokens.jwt_secret = jwt_secret.into();
    s
}

async fn start_query(s: query_api::configuration::Settings) -> QueryNode {
    let app = query_api::startup::Application::build(s)
        .await
        .expect("build query-api");
    let addr = app.local_addr().expect("local addr");
    let state = app.state.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = app
            .run(async move {
                let _ = stopped.await;
            })
            .await;
    });
    QueryNode {
        addr,
        state,
        stop: Some(stop),
        server: Some(server),
    }
}

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

    /// A client that drops presence frames (see [`Client::watch_presence`]).
    pub async fn connect(addr: SocketAddr, token: &str) -> Client {
        let mut req = format!("ws://{addr}/v1/ws")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
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

/// Resident memory of this process, bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("rss pages");
    pages * 4096
}
