//! Spawns the real command-api and the real query-api (both on port 0) against one
//! test database and JetStream stream. Data is created through the command API
//! over HTTP, projected with `projector::catch_up_from_log`, and read over HTTP.

use reqwest::Method;
use serde_json::{Value, json};
use test_support::{Api, Node, Running, TestEnv};
use uuid::Uuid;

pub use test_support::{Res, TestUser, unique};

pub struct TestApp {
    /// query-api
    pub query: String,
    pub http: reqwest::Client,
    pub db: eventlog::testing::TestDb,
    pub nats: eventlog::testing::TestNats,
    /// The query-api's search settings (its embedded index, in the env's data directory).
    pub search: search::SearchSettings,
    /// The command API's state (its jobs, run by hand: the retention pass).
    pub command_state: command_api::state::AppState,
    /// The data directory, removed with the app.
    _data: tempfile::TempDir,
    /// The command API.
    commands: Api,
    /// The query API.
    reads: Api,
    running: Vec<Running>,
}

/// Where a command committed: `position` of a command response.
pub fn position(body: &Value) -> i64 {
    body["position"]
        .as_i64()
        .expect("position in command response")
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns both services; `configure` adjusts the query-api's settings.
    pub async fn spawn_with(
        configure: impl FnOnce(&mut query_api::configuration::Settings),
    ) -> TestApp {
        Self::spawn_with_blobs(None, configure).await
    }

    /// Spawns both services keeping attachments where `blobs` says (both read the same
    /// settings); `None`: the local default, in the data directory.
    pub async fn spawn_with_blobs(
        blobs: Option<blobs::settings::BlobSettings>,
        configure: impl FnOnce(&mut query_api::configuration::Settings),
    ) -> TestApp {
        let env = TestEnv::new().await;
        let mut cs = env.command_settings();
        if let Some(b) = &blobs {
            cs.blobs = b.clone();
        }
        let cmd = Node::command(cs).await;
        projector::migrate(&env.db.pool)
            .await
            .expect("read-model migrations");
        let mut qs = env.query_settings();
        if let Some(b) = blobs {
            qs.blobs = b;
        }
        configure(&mut qs);
        let search = qs.search.clone();
        let query = Node::query(qs).await;
        let http = reqwest::Client::new();
        let TestEnv { db, nats, data, .. } = env;
        TestApp {
            query: query.base(),
            commands: Api::new(http.clone(), cmd.base()),
            reads: Api::new(http.clone(), query.base()),
            http,
            db,
            nats,
            search,
            command_state: cmd.state.clone(),
            _data: data,
            running: vec![cmd.running, query.running],
        }
    }

    /// Stops both servers and deletes the stream; the database goes with `db`.
    pub async fn cleanup(self) {
        for running in self.running {
            running.stop().await;
        }
        self.nats.cleanup().await;
    }

    /// command-api's base URL.
    pub fn command_base(&self) -> &str {
        &self.commands.base
    }

    /// Every file under the local blob store (the data directory's `blobs/`).
    pub fn blob_files(&self) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self._data.path().join("blobs"), &mut out);
        out
    }

    /// Applies every event of the log to the read models.
    pub async fn project(&self) -> u64 {
        projector::catch_up_from_log(&self.db.pool, &self.db.pool)
            .await
            .expect("projection catch-up")
    }

    /// Read-model rows (every table the rebuild oracle compares) that contain `text`.
    pub async fn in_read_models(&self, text: &str) -> Vec<String> {
        projector::oracle::snapshot(&self.db.pool)
            .await
            .expect("read-model snapshot")
            .into_iter()
            .flat_map(|(table, rows)| {
                rows.into_iter()
                    .filter(|r| r.contains(text))
                    .map(move |r| format!("{table}: {r}"))
            })
            .collect()
    }

    /// Rebuilds the read models and the search index from the log (blue/green, as an
    /// operator's `projector rebuild --all`) and checks that the rebuilt read models equal
    /// the live ones, row for row.
    pub async fn rebuild_all(&self) {
        let pool = &self.db.pool;
        let live = projector::oracle::snapshot(pool).await.expect("snapshot");
        let read_models = projector::read_models::ReadModels::new(pool.clone());
        projector::framework::rebuild(&read_models, pool, pool, 1000, &|_| {})
            .await
            .expect("read-model rebuild");
        let index = projector::search_index::SearchIndex::from_settings(self.search.clone());
        projector::framework::rebuild(&index, pool, pool, 1000, &|_| {})
            .await
            .expect("search index rebuild");
        let rebuilt = projector::oracle::snapshot(pool).await.expect("snapshot");
        assert_eq!(
            projector::oracle::diff(&live, &rebuilt, 5),
            (0, Vec::<String>::new()),
            "the rebuilt read models differ from the live ones"
        );
    }

    /// Applies every event of the log to the search index (and nothing else).
    pub async fn index(&self) -> u64 {
        let index = projector::search_index::SearchIndex::from_settings(self.search.clone());
        projector::framework::catch_up_from_log(&index, &self.db.pool, &self.db.pool, 1000)
            .await
            .expect("search index catch-up")
    }

    // ---- query-api ----

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.get_with(path, Some(token), &[]).await
    }

    pub async fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Res {
        self.reads
            .request(Method::GET, path, token, None, headers)
            .await
    }

    // ---- command-api ----

    /// Uploads `bytes` as an attachment named `name` to `room`, streamed in chunks of 64 KiB
    /// (no Content-Length, as a browser's streamed upload).
    pub async fn upload(&self, user: &TestUser, room: Uuid, name: &str, bytes: Vec<u8>) -> Res {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let res = self
            .http
            .post(format!(
                "{}/v1/rooms/{room}/attachments",
                self.commands.base
            ))
            .query(&[("name", name)])
            .bearer_auth(&user.token)
            .header("content-type", "image/png")
            .body(body)
            .send()
            .await
            .expect("upload");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("upload answer");
        Res {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// `GET path` on query-api as raw bytes: status, headers, body.
    pub async fn get_raw(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self
            .http
            .get(format!("{}{path}", self.query))
            .bearer_auth(token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("get");
        let status = res.status().as_u16();
        let h = res.headers().clone();
        (status, h, res.bytes().await.expect("body").to_vec())
    }

    pub async fn command(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Res {
        self.commands
            .request(method, path, Some(token), body, &[])
            .await
    }

    pub async fn register(&self, username: &str) -> TestUser {
        self.commands.register(username).await
    }

    /// Creates a group room; returns its id.
    pub async fn create_room(&self, owner: &TestUser, name: &str, visibility: &str) -> Uuid {
        self.commands
            .create_room_with(
                owner,
                json!({ "name": name, "topic": format!("topic of {name}"), "visibility": visibility }),
            )
            .await
    }

    pub async fn join(&self, user: &TestUser, room: Uuid) -> Res {
        self.commands.join(user, room).await
    }

    pub async fn leave(&self, user: &TestUser, room: Uuid) -> Res {
        self.commands
            .post_empty(&format!("/v1/rooms/{room}/leave"), &user.token)
            .await
    }

    pub async fn invite(&self, by: &TestUser, room: Uuid, who: &TestUser) -> Res {
        self.commands.invite(by, room, who).await
    }

    pub async fn kick(&self, by: &TestUser, room: Uuid, who: &TestUser) -> Res {
        self.commands.kick(by, room, who.id).await
    }

    /// Sends a message; returns `(message_id, seq, position)`.
    pub async fn say(&self, user: &TestUser, room: Uuid, body: &str) -> (Uuid, i64, i64) {
        let res = self.commands.send_message(user, room, body).await;
        let b = res.assert_status(201);
        (
            res.uuid("message_id"),
            b["seq"].as_i64().expect("seq"),
            position(b),
        )
    }

    pub async fn delete_message(&self, user: &TestUser, room: Uuid, message: Uuid) -> Res {
        self.command(
            Method::DELETE,
            &format!("/v1/rooms/{room}/messages/{message}"),
            &user.token,
            None,
        )
        .await
    }

    pub async fn mark_read(&self, user: &TestUser, room: Uuid, seq: i64) -> Res {
        self.command(
            Method::POST,
            &format!("/v1/rooms/{room}/read"),
            &user.token,
            Some(json!({ "seq": seq })),
        )
        .await
    }

    /// The caller's entry for `room` in `GET /v1/rooms`.
    pub async fn my_room(&self, user: &TestUser, room: Uuid) -> Value {
        let res = self.get("/v1/rooms", &user.token).await;
        res.assert_status(200)["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .find(|r| r["room_id"] == room.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("room {room} not listed: {}", res.text))
    }

    /// Opens (or finds) the direct room of `a` and `b`.
    pub async fn open_direct(&self, a: &TestUser, b: &TestUser) -> Uuid {
        let res = self
            .command(
                Method::POST,
                "/v1/direct",
                &a.token,
                Some(json!({ "user_id": b.id })),
            )
            .await;
        assert!(
            res.status == 200 || res.status == 201,
            "open direct: {}",
            res.text
        );
        res.uuid("room_id")
    }
}
