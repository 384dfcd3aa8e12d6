//! Everything one scenario runs and may break, owned by the harness: a PostgreSQL cluster
//! (`initdb` into a temporary directory), a nats-server with JetStream, and the platform's
//! roles as separate processes — `command-api` (the API, its relay turned off), a second
//! `command-api` that is the relay, one or two `projector`s and a `query-api`. Optionally
//! the roles reach PostgreSQL and NATS through a [`Proxy`] the scenario can partition.
//! Nothing of the machine's shared services is touched.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::PgPool;
use test_support::{OwnedNats, OwnedPostgres};

use crate::process::{Proc, bin_dir, free_port};
use crate::proxy::Proxy;

/// The database the platform uses on the harness's PostgreSQL.
const DATABASE: &str = "chat";

/// The shape of a cluster.
#[derive(Clone, Debug)]
pub struct Shape {
    /// 1, or 2 (the second runs the read models only: one writer per search index).
    pub projectors: usize,
    /// The roles reach PostgreSQL through a proxy the scenario can partition.
    pub pg_proxy: bool,
    /// The roles reach NATS through a proxy the scenario can partition.
    pub nats_proxy: bool,
    /// The projectors' JetStream ack wait (`APP_ACK_WAIT_MS`).
    pub ack_wait_ms: u64,
    /// How long an access token lives (`APP_ACCESS_TTL_SECS`; the clients refresh it).
    pub access_ttl_secs: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            projectors: 1,
            pg_proxy: false,
            nats_proxy: false,
            ack_wait_ms: 30_000,
            access_ttl_secs: 900,
        }
    }
}

pub struct Cluster {
    pub pg: OwnedPostgres,
    pub nats: OwnedNats,
    pub pg_proxy: Option<Proxy>,
    pub nats_proxy: Option<Proxy>,
    /// The API (command-api, relay off).
    pub command: Proc,
    /// The relay (a second command-api, relay on; no traffic).
    pub relay: Proc,
    pub projectors: Vec<Proc>,
    pub query: Proc,
    /// The harness's own connections, straight to PostgreSQL (never through the proxy).
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub jwt_secret: String,
    /// Logs of every process and the data directory; kept when the scenario fails.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(shape: &Shape) -> anyhow::Result<Cluster> {
        let bins = bin_dir()?;
        let pg = OwnedPostgres::start_new()
            .await?
            .context("the PostgreSQL server binaries (initdb, pg_ctl) are not installed")?;
        let nats = OwnedNats::start_new()
            .await?
            .context("nats-server is not installed (scripts/services.sh installs it)")?;
        // Kept unless the scenario passes (see `Cluster::passed`), so a failure or an error
        // leaves every role's log behind.
        let dir = tempfile::Builder::new()
            .prefix("chaos-")
            .disable_cleanup(true)
            .tempdir()?;
        let admin = PgPool::connect(&pg.url("postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
            .execute(&admin)
            .await?;
        admin.close().await;
        // The harness's own pool outlives every PostgreSQL restart it causes: each
        // connection is tested before use, so one that died with the server is replaced.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .test_before_acquire(true)
            .connect(&pg.url(DATABASE))
            .await?;

        let pg_proxy = match shape.pg_proxy {
            true => Some(Proxy::start(SocketAddr::from(([127, 0, 0, 1], pg.port()))).await?),
            false => None,
        };
        let nats_proxy = match shape.nats_proxy {
            true => Some(Proxy::start(SocketAddr::from(([127, 0, 0, 1], nats.port()))).await?),
            false => None,
        };
        let pg_port = pg_proxy.as_ref().map_or(pg.port(), |p| p.port);
        let nats_port = nats_proxy.as_ref().map_or(nats.port(), |p| p.port);
        let jwt_secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let env = |extra: &[(&str, String)]| -> Vec<(String, String)> {
            let mut env: Vec<(String, String)> = [
                (
                    "APP_DATABASE_URL",
                    format!("postgres://postgres@127.0.0.1:{pg_port}/{DATABASE}"),
                ),
                ("APP_NATS_URL", format!("nats://127.0.0.1:{nats_port}")),
                ("APP_JWT_SECRET", jwt_secret.clone()),
                ("APP_CREATE_DATABASE", "false".into()),
                ("APP_RATE_LIMIT_ENABLED", "false".into()),
                ("APP_DATA_DIR", data.display().to_string()),
                ("APP_DB_MAX_CONNECTIONS", "8".into()),
                ("APP_HASH_CONCURRENCY", "2".into()),
                ("APP_ACK_WAIT_MS", shape.ack_wait_ms.to_string()),
                ("APP_ACCESS_TTL_SECS", shape.access_ttl_secs.to_string()),
                (
                    "RUST_LOG",
                    std::env::var("CHAOS_RUST_LOG").unwrap_or_else(|_| {
                        "info,sqlx=warn,async_nats=warn,tower_http=warn".into()
                    }),
                ),
            ]
            .into_iter()
            .chain(extra.iter().cloned())
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            env.sort();
            env
        };
        let bin = |name: &str| -> PathBuf { bins.join(name) };
        let mut command = Proc::new(
            "command-api",
            bin("command-api"),
            &[],
            env(&[("APP_RELAY_ENABLED", "false".into())]),
            dir.path(),
            free_port()?,
        );
        let relay = Proc::new(
            "relay",
            bin("command-api"),
            &[],
            env(&[("APP_RELAY_ENABLED", "true".into())]),
            dir.path(),
            free_port()?,
        );
        let mut projectors = Vec::new();
        for i in 0..shape.projectors.max(1) {
            // The second runs the read models only: the search index has one writer.
            let args: &[&str] = match i {
                0 => &["run"],
                _ => &["run", "--projection", projector::READ_MODELS],
            };
            projectors.push(Proc::new(
                &format!("projector-{}", i + 1),
                bin("projector"),
                args,
                env(&[]),
                dir.path(),
                free_port()?,
            ));
        }
        let query = Proc::new(
            "query-api",
            bin("query-api"),
            &[],
            env(&[]),
            dir.path(),
            free_port()?,
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        // The command API migrates the log first; then the others.
        command.start()?;
        command.wait_ready(&http).await?;
        let mut cluster = Cluster {
            pg,
            nats,
            pg_proxy,
            nats_proxy,
            command,
            relay,
            projectors,
            query,
            pool,
            http,
            jwt_secret,
            dir,
        };
        cluster.relay.start()?;
        for p in &mut cluster.projectors {
            p.start()?;
        }
        cluster.query.start()?;
        let http = cluster.http.clone();
        cluster.relay.wait_ready(&http).await?;
        for p in &mut cluster.projectors {
            p.wait_ready(&http).await?;
        }
        cluster.query.wait_ready(&http).await?;
        Ok(cluster)
    }

    /// Every role process.
    pub fn roles(&self) -> impl Iterator<Item = &Proc> {
        [&self.command, &self.relay, &self.query]
            .into_iter()
            .chain(self.projectors.iter())
    }

    /// The query API's address (for WebSockets).
    pub fn query_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.query.port))
    }

    /// The log's head position.
    pub async fn head(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar("SELECT position FROM log_head")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The read models' checkpoint.
    pub async fn checkpoint(&self) -> anyhow::Result<i64> {
        Ok(projector::read_models::checkpoint(&self.pool, projector::READ_MODELS).await?)
    }

    /// The JetStream stream's last sequence (0 when it does not exist).
    pub async fn stream_last(&self) -> anyhow::Result<u64> {
        let client = async_nats::connect(self.nats.url()).await?;
        let js = async_nats::jetstream::new(client);
        match js
            .get_stream(eventlog::RelayConfig::default().stream_name)
            .await
        {
            Ok(mut s) => Ok(s.info().await?.state.last_sequence),
            Err(_) => Ok(0),
        }
    }

    /// Waits until the stream and the read models have every event of the log (a head
    /// that stays put for the check); returns how long that took.
    pub async fn converge(&self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let head = self.head().await?;
            let (checkpoint, stream) = (self.checkpoint().await?, self.stream_last().await?);
            if checkpoint == head && stream == u64::try_from(head)? {
                return Ok(started.elapsed());
            }
            if started.elapsed() > within {
                bail!(
                    "not converged within {within:?}: log head {head}, stream {stream}, \
                     read models {checkpoint}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Panics reported in any role's log.
    pub fn panics(&self) -> usize {
        self.roles().map(Proc::panics).sum()
    }

    /// The roles' data directory (`APP_DATA_DIR`: the search index).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where the logs are.
    pub fn logs(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// The scenario passed: its logs and data are removed once the roles have stopped.
    pub fn passed(mut self) {
        for p in [&mut self.command, &mut self.relay, &mut self.query]
            .into_iter()
            .chain(self.projectors.iter_mut())
        {
            p.stop();
        }
        self.dir.disable_cleanup(false);
    }
}
