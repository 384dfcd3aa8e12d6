//! Test support: a fresh PostgreSQL database and a unique JetStream stream per test
//! (feature `testing`). Both leave nothing behind.

use std::str::FromStr;

/// The PostgreSQL log's internals, for tests that check them directly (production code goes
/// through [`crate::EventStore`] and [`crate::PgEventStore`]).
pub use crate::postgres::{
    APPENDED_CHANNEL, BEGIN_APPEND, append_in_tx, append_locked, head_position, log_id, read_all,
};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The admin database URL tests create their databases on (`TEST_DATABASE_URL`).
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// The NATS URL tests use (`NATS_URL`).
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}

/// A fresh database `t_<uuid>` with this crate's migrations applied; dropped on `Drop`
/// (unless it lives on a server of its own, see [`TestDb::on_own_server`]).
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
    /// The server's admin URL to drop the database through; `None`: nothing to drop.
    drop_through: Option<String>,
}

impl TestDb {
    pub async fn new() -> anyhow::Result<TestDb> {
        Self::with_max_connections(20).await
    }

    pub async fn with_max_connections(max_connections: u32) -> anyhow::Result<TestDb> {
        let mut db = Self::create(&admin_database_url(), max_connections).await?;
        db.drop_through = Some(admin_database_url());
        Ok(db)
    }

    /// A fresh database without even the log's migrations (dropped on `Drop`): for tests
    /// that prepare it first, as an administrator would (least-privilege roles).
    pub async fn empty() -> anyhow::Result<TestDb> {
        let mut db = Self::create_unmigrated(&admin_database_url(), 20).await?;
        db.drop_through = Some(admin_database_url());
        Ok(db)
    }

    /// A fresh database on a server that belongs to one test (`admin_url`, e.g. a
    /// throw-away cluster that test stops and starts): not dropped on `Drop`, because
    /// the server may be down by then and goes away with its data anyway.
    pub async fn on_own_server(admin_url: &str) -> anyhow::Result<TestDb> {
        Self::create(admin_url, 20).await
    }

    async fn create(admin_url: &str, max_connections: u32) -> anyhow::Result<TestDb> {
        let db = Self::create_unmigrated(admin_url, max_connections).await?;
        crate::postgres::migrate(&db.pool).await?;
        Ok(db)
    }

    async fn create_unmigrated(admin_url: &str, max_connections: u32) -> anyhow::Result<TestDb> {
        let admin_url = admin_url.to_owned();
        let name = format!("t_{}", Uuid::new_v4().simple());
        {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect(&admin_url)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&admin)
                .await?;
            admin.close().await;
        }
        let url = replace_database(&admin_url, &name);
        let options = PgConnectOptions::from_str(&admin_url)?.database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        let db = TestDb {
            pool,
            name,
            url,
            drop_through: None,
        };
        Ok(db)
    }
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin_url) = self.drop_through.clone() else {
            return;
        };
        let name = self.name.clone();
        // Drop may run inside a #[tokio::test] runtime, which must not be blocked on: use a
        // thread with its own small runtime.
        let handle = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "could not build a runtime to drop the test database");
                    return;
                }
            };
            rt.block_on(async move {
                let result = async {
                    let admin = PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&admin_url)
                        .await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                        .execute(&admin)
                        .await?;
                    admin.close().await;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                if let Err(e) = result {
                    tracing::warn!(error = %e, database = %name, "could not drop the test database");
                }
            });
        });
        let _ = handle.join();
    }
}

/// A NATS connection plus a unique stream name and subject prefix for one test.
///
/// Call [`TestNats::cleanup`] at the end of the test; if the test panics first, `Drop` deletes
/// the stream instead.
pub struct TestNats {
    pub client: async_nats::Client,
    pub stream_name: String,
    pub prefix: String,
    cleaned: bool,
}

impl TestNats {
    pub async fn new() -> anyhow::Result<TestNats> {
        let client = async_nats::connect(nats_url()).await?;
        let id = Uuid::new_v4().simple().to_string();
        Ok(TestNats {
            client,
            stream_name: format!("T_{id}"),
            prefix: format!("t{id}"),
            cleaned: false,
        })
    }

    /// A relay configuration for this test's stream (a unique advisory lock key too).
    pub fn relay_config(&self) -> crate::RelayConfig {
        crate::RelayConfig {
            stream_name: self.stream_name.clone(),
            subject_prefix: self.prefix.clone(),
            lock_key: i64::from_le_bytes(
                Uuid::new_v4().as_bytes()[..8]
                    .try_into()
                    .unwrap_or([0u8; 8]),
            ),
            ..Default::default()
        }
    }

    /// Deletes the stream (if it exists).
    pub async fn cleanup(mut self) {
        let js = async_nats::jetstream::new(self.client.clone());
        let _ = js.delete_stream(&self.stream_name).await;
        let _ = self.client.flush().await;
        self.cleaned = true;
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let stream_name = self.stream_name.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let js = async_nats::jetstream::new(client);
                    let _ = js.delete_stream(&stream_name).await;
                }
            });
        });
        let _ = handle.join();
    }
}
