//! The real services, each on port 0, against a database and a JetStream stream made
//! for one test.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use eventlog::testing::{TestDb, TestNats};
use futures::future::{BoxFuture, FutureExt};
use http_kit::serve::Application;
use http_kit::settings::Layered as _;
use uuid::Uuid;

/// How long stopping a served application may take.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// One test's fresh database (dropped with it), unique JetStream stream (deleted by
/// [`TestEnv::cleanup`]) and JWT secret, shared by the services it starts.
pub struct TestEnv {
    pub db: TestDb,
    pub nats: TestNats,
    pub jwt_secret: String,
    /// The data directory (the search index), removed with the env.
    pub data: tempfile::TempDir,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        Self::with_db(TestDb::new().await.expect("test database")).await
    }

    /// An env whose database lives on `server`, a PostgreSQL the test owns (and may
    /// stop and start again); the shared one is not used.
    pub async fn on_own_server(server: &crate::postgres::OwnedPostgres) -> TestEnv {
        let db = TestDb::on_own_server(&server.url("postgres"))
            .await
            .expect("test database on the owned server");
        Self::with_db(db).await
    }

    /// An env whose database is empty, not even migrated: the test prepares it first.
    pub async fn with_empty_database() -> TestEnv {
        Self::with_db(TestDb::empty().await.expect("empty test database")).await
    }

    async fn with_db(db: TestDb) -> TestEnv {
        TestEnv {
            db,
            nats: TestNats::new().await.expect("test nats"),
            jwt_secret: format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()),
            data: tempfile::tempdir().expect("data directory"),
        }
    }

    /// The search settings of this test: the embedded index in its own data directory.
    pub fn search_settings(&self) -> search::SearchSettings {
        let mut s = projector::configuration::Settings::from_defaults()
            .expect("defaults")
            .search;
        s.data_dir = self.data.path().to_owned();
        s
    }

    /// command-api settings for this test: port 0, its database (which exists), its
    /// stream, its secret, two concurrent password hashes.
    pub fn command_settings(&self) -> command_api::configuration::Settings {
        let mut s = command_api::configuration::Settings::from_defaults().expect("defaults");
        self.point(&mut s.service);
        s.tokens.jwt_secret = self.jwt_secret.as_str().into();
        s.create_database = false;
        s.hash_concurrency = 2;
        // Attachments in the data directory's `blobs/`, where query-api reads them.
        s.data_dir = self.data.path().to_owned();
        // Tests register and send from one address far faster than people do; the rate
        // limits have tests of their own that turn them on.
        s.limits.rate.rate_limit_enabled = false;
        s
    }

    /// query-api settings for this test: port 0, its database (read models and log),
    /// its stream, its secret, eight connections.
    pub fn query_settings(&self) -> query_api::configuration::Settings {
        let mut s = query_api::configuration::Settings::from_defaults().expect("defaults");
        self.point(&mut s.service);
        s.service.db_max_connections = 8;
        s.limits.rate.rate_limit_enabled = false;
        s.tokens.jwt_secret = self.jwt_secret.as_str().into();
        s.search = self.search_settings();
        s
    }

    fn point(&self, s: &mut http_kit::settings::ServiceSettings) {
        s.listen = "127.0.0.1:0".into();
        s.database_url = self.db.url.as_str().into();
        s.nats_url = eventlog::testing::nats_url().into();
        s.stream_name = self.nats.stream_name.clone();
        s.subject_prefix = self.nats.prefix.clone();
    }

    /// Deletes the stream; the database is dropped with `db`.
    pub async fn cleanup(self) {
        self.nats.cleanup().await;
    }
}

/// An application served in the background until [`Running::stop`].
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Runs `serve` (an application's `run`) with a shutdown future that resolves on
    /// [`Running::stop`].
    pub fn spawn<F, Fut>(serve: F) -> Running
    where
        F: FnOnce(BoxFuture<'static, ()>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = serve(
            async move {
                let _ = stopped.await;
            }
            .boxed(),
        );
        let task = tokio::spawn(async move {
            let _ = served.await;
        });
        Running { stop, task }
    }

    /// Shuts the application down and waits (bounded) until it has stopped.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(STOP_WITHIN, self.task).await;
    }
}

/// A service served on `addr`, with its state.
pub struct Node<S> {
    pub addr: SocketAddr,
    pub state: S,
    pub running: Running,
}

impl<S> Node<S> {
    /// `http://` and the address.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        self.running.stop().await;
    }
}

impl<S: Clone + Send + 'static> Node<S> {
    /// Serves a built application in the background.
    pub fn start(app: Application<S>) -> Self {
        Node {
            addr: app.local_addr().expect("local addr"),
            state: app.state.clone(),
            running: Running::spawn(|stop| app.run(stop)),
        }
    }
}

impl Node<command_api::state::AppState> {
    /// The real command-api (with its relay when the settings enable it).
    pub async fn command(settings: command_api::configuration::Settings) -> Self {
        Node::start(
            command_api::startup::build(settings)
                .await
                .expect("build command-api"),
        )
    }
}

impl Node<query_api::state::AppState> {
    /// The real query-api.
    pub async fn query(settings: query_api::configuration::Settings) -> Self {
        Node::start(
            query_api::startup::build(settings)
                .await
                .expect("build query-api"),
        )
    }

    /// The live hub: connections, subscriptions, presence.
    pub fn live(&self) -> &query_api::ws::Live {
        &self.state.live
    }

    /// Connections the server closed for `reason` (`chat_ws_closed_total{reason}`).
    pub fn closed(&self, reason: &str) -> u64 {
        self.state
            .metrics
            .ws_closed
            .with_label_values(&[reason])
            .get()
    }
}
