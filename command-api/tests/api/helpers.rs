//! Spawns the real command-api on port 0 against a database and a JetStream
//! stream created for the test, and talks to it over HTTP (`test_support::Api`,
//! which `TestApp` derefs to: `request`, `raw`, `post`, `post_empty`, `register`,
//! `join`, ...).

use command_api::configuration::Settings;
use command_api::state::AppState;
use eventlog::testing::{TestDb, TestNats};
use test_support::{Api, Node, Running, TestEnv};
use uuid::Uuid;

pub use test_support::{Res, TestUser};

pub struct TestApp {
    pub db: TestDb,
    pub nats: TestNats,
    pub state: AppState,
    pub settings: Settings,
    api: Api,
    running: Running,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let env = TestEnv::new().await;
        let mut settings = env.command_settings();
        configure(&mut settings);
        let node = Node::command(settings.clone()).await;
        let api = Api::new(reqwest::Client::new(), node.base());
        let TestEnv { db, nats, .. } = env;
        TestApp {
            db,
            nats,
            state: node.state,
            settings,
            api,
            running: node.running,
        }
    }

    /// Stops the server and deletes the stream; the database is dropped with `db`.
    pub async fn cleanup(self) {
        self.running.stop().await;
        self.nats.cleanup().await;
    }

    pub async fn create_room(&self, owner: &TestUser, visibility: &str) -> Uuid {
        self.api.create_room(owner, "room", visibility).await
    }

    pub async fn send(&self, user: &TestUser, room: Uuid, body: &str) -> Res {
        self.send_message(user, room, body).await
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
