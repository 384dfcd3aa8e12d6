//! Spawns the real command-api on port 0 against a database and a JetStream
//! stream created for the test, and talks to it over HTTP.

use command_api::configuration::Settings;
use command_api::startup::Application;
use command_api::state::AppState;
use eventlog::testing::{TestDb, TestNats};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    pub nats: TestNats,
    pub state: AppState,
    pub settings: Settings,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub username: String,
    pub token: String,
    pub refresh: String,
}

/// A response: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub body: Value,
}

impl Res {
    /// Asserts the documented error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.body
        );
        assert_eq!(
            self.body["error"]["code"], code,
            "unexpected error code, body: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"].is_string(),
            "error without message: {}",
            self.body
        );
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.body
        );
        &self.body
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDb::new().await.expect("test database");
        let nats = TestNats::new().await.expect("test nats");
        let mut settings = Settings::from_defaults().expect("default settings");
        settings.service.listen = "127.0.0.1:0".into();
        settings.service.database_url = db.url.clone().into();
        settings.create_database = false;
        settings.service.nats_url = eventlog::testing::nats_url().into();
        settings.service.stream_name = nats.stream_name.clone();
        settings.service.subject_prefix = nats.prefix.clone();
        settings.tokens.jwt_secret =
            format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()).into();
        settings.hash_concurrency = 2;
        configure(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("build app");
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
        TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            db,
            nats,
            state,
            settings,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server and deletes the stream; the database is dropped with `db`.
    pub async fn cleanup(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
        }
        self.nats.cleanup().await;
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Res {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
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
        let text = res.text().await.expect("body read");
        Res {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.request(Method::POST, path, token, Some(body), &[])
            .await
    }

    pub async fn post_empty(&self, path: &str, token: &str) -> Res {
        self.request(Method::POST, path, Some(token), None, &[])
            .await
    }

    pub async fn register(&self, username: &str) -> TestUser {
        let res = self
            .post(
                "/v1/auth/register",
                None,
                json!({ "username": username, "password": "correct horse battery" }),
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
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    pub async fn create_room(&self, owner: &TestUser, visibility: &str) -> Uuid {
        let res = self
            .post(
                "/v1/rooms",
                Some(&owner.token),
                json!({ "name": "room", "visibility": visibility }),
            )
            .await;
        res.assert_status(201)["room_id"]
            .as_str()
            .expect("room_id")
            .parse()
            .expect("uuid")
    }

    pub async fn join(&self, user: &TestUser, room: Uuid) -> Res {
        self.post_empty(&format!("/v1/rooms/{room}/join"), &user.token)
            .await
    }

    pub async fn send(&self, user: &TestUser, room: Uuid, body: &str) -> Res {
        self.post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&user.token),
            json!({ "client_msg_id": Uuid::new_v4().to_string(), "body": body }),
        )
        .await
    }

    /// Number of events in the log (to prove a rejected command appended nothing).
    pub async fn event_count(&self) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM events")
            .fetch_one(&self.db.pool)
            .await
            .expect("count");
        n
    }

    /// Event types of a stream, in version order.
    pub async fn stream_types(&self, stream_id: &str) -> Vec<String> {
        sqlx::query_as::<_, (String,)>(
            "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY version",
        )
        .bind(stream_id)
        .fetch_all(&self.db.pool)
        .await
        .expect("stream")
        .into_iter()
        .map(|(t,)| t)
        .collect()
    }
}

impl TestApp {
    /// A request with a raw body and an explicit (or no) `Content-Type`.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Res {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        let res = req.body(body).send().await.expect("request sent");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body read");
        Res {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    /// Rows in a table of the test database (credentials, refresh tokens, …).
    pub async fn row_count(&self, table: &str) -> i64 {
        let (n,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&self.db.pool)
                .await
                .expect("count");
        n
    }

    /// Number of events of one type in a stream.
    pub async fn count_of(&self, stream_id: &str, event_type: &str) -> usize {
        self.stream_types(stream_id)
            .await
            .iter()
            .filter(|t| *t == event_type)
            .count()
    }
}
