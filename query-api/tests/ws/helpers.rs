//! Spawns the real command-api (with its relay) and query-api nodes against a
//! database and a JetStream stream made for the test, and talks to them over
//! HTTP and WebSockets (`test_support::Client`).

use eventlog::testing::{TestDb, TestNats};
use serde_json::Value;
use test_support::{Api, Node, Running, TestEnv, TestUser};
use uuid::Uuid;

pub use test_support::ws::Ws;
pub use test_support::{Client, DEADLINE, Got, is_message, wait_until};

/// A query-api node: `addr`, `state`, `live()`, `closed(reason)`, `stop()`.
pub type QueryNode = Node<query_api::state::AppState>;

pub struct Platform {
    pub cmd_base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub nats: TestNats,
    pub jwt_secret: String,
    pub query: QueryNode,
    /// The command API's state (its jobs, run by hand: the retention pass).
    pub command_state: command_api::state::AppState,
    /// The command API.
    commands: Api,
    cmd: Running,
    query_settings: query_api::configuration::Settings,
    /// The search index directory, kept as long as the query API runs.
    _data: tempfile::TempDir,
}

impl Platform {
    pub async fn spawn() -> Platform {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(
        configure: impl Fn(&mut query_api::configuration::Settings),
    ) -> Platform {
        let env = TestEnv::new().await;
        let cmd = Node::command(env.command_settings()).await;
        projector::migrate(&env.db.pool)
            .await
            .expect("read-model migrations");
        let query_settings = env.query_settings();
        let mut qs = query_settings.clone();
        configure(&mut qs);
        let query = Node::query(qs).await;
        let commands = Api::new(reqwest::Client::new(), cmd.base());
        let TestEnv {
            db,
            nats,
            jwt_secret,
            data,
        } = env;
        Platform {
            cmd_base: commands.base.clone(),
            http: commands.http.clone(),
            db,
            nats,
            jwt_secret,
            query,
            commands,
            command_state: cmd.state.clone(),
            cmd: cmd.running,
            query_settings,
            _data: data,
        }
    }

    /// query-api settings for this platform (listen on port 0).
    pub fn query_settings(&self) -> query_api::configuration::Settings {
        self.query_settings.clone()
    }

    pub async fn cleanup(self) {
        self.query.stop().await;
        self.cmd.stop().await;
        self.nats.cleanup().await;
    }

    /// Brings the read models up to the log (for presence audiences).
    pub async fn project(&self) {
        projector::catch_up_from_log(&self.db.pool, &self.db.pool)
            .await
            .expect("projector catch-up");
    }

    pub async fn post(&self, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        self.command(reqwest::Method::POST, path, token, body).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.command(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.command(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let res = self
            .commands
            .request(method, path, Some(token), body, &[])
            .await;
        (res.status, res.body)
    }

    pub async fn register(&self) -> TestUser {
        let name = format!("u{}", &Uuid::new_v4().simple().to_string()[..12]);
        self.commands.register(&name).await
    }

    pub async fn create_room(&self, owner: &TestUser, visibility: &str) -> Uuid {
        self.commands.create_room(owner, "room", visibility).await
    }

    pub async fn join(&self, user: &TestUser, room: Uuid) {
        let res = self.commands.join(user, room).await;
        assert!(
            res.status == 200 || res.status == 201,
            "join: {} {}",
            res.status,
            res.text
        );
    }

    pub async fn kick(&self, owner: &TestUser, user: &TestUser, room: Uuid) {
        let res = self.commands.kick(owner, room, user.id).await;
        assert!((200..300).contains(&res.status), "kick: {}", res.status);
    }

    /// Sends a message; returns the response body (`message_id`, `seq`, `position`).
    pub async fn send(&self, user: &TestUser, room: Uuid, body: &str) -> Value {
        let res = self.commands.send_message(user, room, body).await;
        assert_eq!(res.status, 201, "send: {}", res.text);
        res.body
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    /// What a blue/green switch of the read models does to their epoch: bumps it and
    /// notifies `chat_projection_epoch` in the same transaction. Returns the new epoch. The
    /// read models' checkpoint must exist ([`Platform::project`]).
    pub async fn bump_epoch(&self) -> i64 {
        let mut tx = self.db.pool.begin().await.expect("begin");
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE projection_checkpoints SET epoch = epoch + 1, updated_at = now() \
             WHERE projection = 'read_models' RETURNING epoch",
        )
        .fetch_one(&mut *tx)
        .await
        .expect("bump the epoch");
        sqlx::query("SELECT pg_notify('chat_projection_epoch', 'read_models:' || $1)")
            .bind(epoch)
            .execute(&mut *tx)
            .await
            .expect("notify");
        tx.commit().await.expect("commit");
        epoch
    }

    /// A REST read of the query API: status, `Chat-Epoch`, body.
    pub async fn read(&self, path: &str, token: &str) -> (u16, i64, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.query.base()))
            .bearer_auth(token)
            .send()
            .await
            .expect("read");
        let status = res.status().as_u16();
        let epoch = res
            .headers()
            .get("chat-epoch")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Chat-Epoch");
        (status, epoch, res.json().await.expect("JSON body"))
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

/// A query-api node of `p` as a separate process (the real binary) on a free port, with
/// `extra` variables; waits until it accepts connections. Killed when dropped.
pub async fn spawn_node(
    p: &Platform,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, std::net::SocketAddr) {
    use http_kit::secret::ExposeSecret as _;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = p.query_settings();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_query-api"))
        .env("APP_LISTEN", format!("127.0.0.1:{port}"))
        .env("APP_DATABASE_URL", s.service.database_url.expose_secret())
        .env("APP_NATS_URL", s.service.nats_url.expose_secret())
        .env("APP_STREAM_NAME", &s.service.stream_name)
        .env("APP_SUBJECT_PREFIX", &s.service.subject_prefix)
        .env("APP_JWT_SECRET", s.tokens.jwt_secret.expose_secret())
        .env("APP_DATA_DIR", &s.search.data_dir)
        .envs(extra.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until(
        DEADLINE,
        std::time::Duration::from_millis(50),
        "the node did not start",
        || async { tokio::net::TcpStream::connect(addr).await.is_ok() },
    )
    .await;
    (child, addr)
}
