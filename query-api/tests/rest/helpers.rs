//! Spawns the real command-api and the real query-api (both on port 0) against one
//! test database and JetStream stream. Data is created through the command API
//! over HTTP, projected with `projector::catch_up_from_log`, and read over HTTP.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;

pub struct TestApp {
    /// command-api
    pub cmd: String,
    /// query-api
    pub query: String,
    pub http: reqwest::Client,
    pub db: eventlog::testing::TestDb,
    pub nats: eventlog::testing::TestNats,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub username: String,
    pub token: String,
}

/// A response: status, headers and JSON body (`Value::Null` when not JSON), plus
/// the raw text (to look for leaks).
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    /// The documented error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.text
        );
        assert_eq!(
            self.body["error"]["code"], code,
            "unexpected error code, body: {}",
            self.text
        );
        assert!(
            self.body["error"]["message"].is_string(),
            "error without message: {}",
            self.text
        );
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.text
        );
        &self.body
    }

    /// `(status, error code)`; the code is empty for a success.
    pub fn outcome(&self) -> (u16, String) {
        (
            self.status,
            self.body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }
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
        let db = eventlog::testing::TestDb::new()
            .await
            .expect("test database");
        let nats = eventlog::testing::TestNats::new().await.expect("test nats");
        let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());

        let mut cs = command_api::configuration::Settings::from_defaults().expect("defaults");
        cs.service.listen = "127.0.0.1:0".into();
        cs.service.database_url = db.url.clone().into();
        cs.create_database = false;
        cs.service.nats_url = eventlog::testing::nats_url().into();
        cs.service.stream_name = nats.stream_name.clone();
        cs.service.subject_prefix = nats.prefix.clone();
        cs.tokens.jwt_secret = secret.clone().into();
        cs.hash_concurrency = 2;
        let cmd_app = command_api::startup::Application::build(cs)
            .await
            .expect("build command-api");
        let cmd_addr = cmd_app.local_addr().expect("local addr");

        projector::migrate(&db.pool)
            .await
            .expect("read-model migrations");

        let mut qs = query_api::configuration::Settings::from_defaults().expect("defaults");
        qs.service.listen = "127.0.0.1:0".into();
        qs.service.database_url = db.url.clone().into();
        qs.service.db_max_connections = 8;
        qs.service.nats_url = eventlog::testing::nats_url().into();
        qs.service.stream_name = nats.stream_name.clone();
        qs.service.subject_prefix = nats.prefix.clone();
        qs.tokens.jwt_secret = secret.into();
        configure(&mut qs);
        let query_app = query_api::startup::Application::build(qs)
            .await
            .expect("build query-api");
        let query_addr = query_app.local_addr().expect("local addr");

        let mut stops = Vec::new();
        let mut servers = Vec::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        servers.push(tokio::spawn(async move {
            let _ = cmd_app
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        stops.push(stop);
        servers.push(tokio::spawn(async move {
            let _ = query_app
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        }));
        TestApp {
            cmd: format!("http://{cmd_addr}"),
            query: format!("http://{query_addr}"),
            http: reqwest::Client::new(),
            db,
            nats,
            stops,
            servers,
        }
    }

    /// Stops both servers and deletes the stream; the database goes with `db`.
    pub async fn cleanup(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for server in self.servers.drain(..) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        }
        self.nats.cleanup().await;
    }

    /// Applies every event of the log to the read models.
    pub async fn project(&self) -> u64 {
        projector::catch_up_from_log(&self.db.pool, &self.db.pool)
            .await
            .expect("projection catch-up")
    }

    async fn send(
        &self,
        method: Method,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Res {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        Res {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    // ---- query-api ----

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.get_with(path, Some(token), &[]).await
    }

    pub async fn get_with(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Res {
        self.send(
            Method::GET,
            format!("{}{path}", self.query),
            token,
            None,
            headers,
        )
        .await
    }

    // ---- command-api ----

    pub async fn command(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Res {
        self.send(
            method,
            format!("{}{path}", self.cmd),
            Some(token),
            body,
            &[],
        )
        .await
    }

    pub async fn register(&self, username: &str) -> TestUser {
        let res = self
            .send(
                Method::POST,
                format!("{}/v1/auth/register", self.cmd),
                None,
                Some(json!({ "username": username, "password": "correct horse battery" })),
                &[],
            )
            .await;
        let body = res.assert_status(201);
        TestUser {
            id: body["user_id"]
                .as_str()
                .expect("user_id")
                .parse()
                .expect("uuid"),
            username: username.to_owned(),
            token: body["access_token"].as_str().expect("token").to_owned(),
        }
    }

    /// Creates a group room; returns its id.
    pub async fn create_room(&self, owner: &TestUser, name: &str, visibility: &str) -> Uuid {
        let res = self
            .command(
                Method::POST,
                "/v1/rooms",
                &owner.token,
                Some(json!({ "name": name, "topic": format!("topic of {name}"), "visibility": visibility })),
            )
            .await;
        res.assert_status(201)["room_id"]
            .as_str()
            .expect("room_id")
            .parse()
            .expect("uuid")
    }

    pub async fn join(&self, user: &TestUser, room: Uuid) -> Res {
        self.command(
            Method::POST,
            &format!("/v1/rooms/{room}/join"),
            &user.token,
            None,
        )
        .await
    }

    pub async fn leave(&self, user: &TestUser, room: Uuid) -> Res {
        self.command(
            Method::POST,
            &format!("/v1/rooms/{room}/leave"),
            &user.token,
            None,
        )
        .await
    }

    pub async fn invite(&self, by: &TestUser, room: Uuid, who: &TestUser) -> Res {
        self.command(
            Method::POST,
            &format!("/v1/rooms/{room}/invites"),
            &by.token,
            Some(json!({ "user_id": who.id })),
        )
        .await
    }

    pub async fn kick(&self, by: &TestUser, room: Uuid, who: &TestUser) -> Res {
        self.command(
            Method::DELETE,
            &format!("/v1/rooms/{room}/members/{}", who.id),
            &by.token,
            None,
        )
        .await
    }

    /// Sends a message; returns `(message_id, seq, position)`.
    pub async fn say(&self, user: &TestUser, room: Uuid, body: &str) -> (Uuid, i64, i64) {
        let res = self
            .command(
                Method::POST,
                &format!("/v1/rooms/{room}/messages"),
                &user.token,
                Some(json!({ "client_msg_id": Uuid::new_v4().to_string(), "body": body })),
            )
            .await;
        let b = res.assert_status(201);
        (
            b["message_id"]
                .as_str()
                .expect("message_id")
                .parse()
                .expect("uuid"),
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
        res.body["room_id"]
            .as_str()
            .expect("room_id")
            .parse()
            .expect("uuid")
    }
}

/// A short unique suffix for names that must not collide across tests.
pub fn unique() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_owned()
}
