//! Typed settings: defaults, then `APP_CONFIG_FILE` (TOML), then `APP_*` variables.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use http_kit::settings::redact_url;
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::{ProjectorConfig, READ_MODELS, consumer_name};

/// Typed settings, layered: built-in defaults, then an optional TOML file (`APP_CONFIG_FILE`),
/// then `APP_*` environment variables.
#[derive(Clone, Deserialize)]
pub struct Settings {
    /// Address of the health and metrics endpoints (default `127.0.0.1:8083`).
    pub listen: String,
    /// PostgreSQL holding the read models, the checkpoints and the dead letters.
    pub database_url: String,
    /// PostgreSQL holding the event log; defaults to `database_url`.
    pub log_database_url: Option<String>,
    pub db_max_connections: u32,
    pub nats_url: String,
    pub stream_name: String,
    pub subject_prefix: String,
    /// The durable consumer of the read models (default `read-models`, the name every
    /// projection's consumer gets from its own name anyway; see [`crate::consumer_name`]).
    pub consumer_name: String,
    pub batch: usize,
    pub max_deliver: i64,
    pub ack_wait_ms: u64,
    /// How long a batch keeps collecting after its first event (see `ProjectorConfig::linger`).
    pub linger_ms: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "log_database_url",
                &self.log_database_url.as_deref().map(redact_url),
            )
            .field("nats_url", &redact_url(&self.nats_url))
            .field("stream_name", &self.stream_name)
            .field("subject_prefix", &self.subject_prefix)
            .field("consumer_name", &self.consumer_name)
            .field("batch", &self.batch)
            .field("linger_ms", &self.linger_ms)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Defaults, then `APP_CONFIG_FILE` (TOML) if set, then `APP_*` variables.
    pub fn load() -> Result<Self, config::ConfigError> {
        http_kit::settings::load(Self::defaults()?)
    }

    /// Built-in defaults only, ignoring the environment.
    pub fn from_defaults() -> Result<Self, config::ConfigError> {
        http_kit::settings::defaults_only(Self::defaults()?)
    }

    fn defaults() -> Result<http_kit::settings::Defaults, config::ConfigError> {
        let d = ProjectorConfig::default();
        http_kit::settings::builder()
            .set_default("listen", "127.0.0.1:8083")?
            .set_default("database_url", "postgres://postgres@127.0.0.1:5432/chat")?
            .set_default("db_max_connections", 8)?
            .set_default("nats_url", "nats://127.0.0.1:4222")?
            .set_default("stream_name", d.stream_name)?
            .set_default("subject_prefix", d.subject_prefix)?
            .set_default("consumer_name", consumer_name(READ_MODELS))?
            .set_default("batch", d.batch as u64)?
            .set_default("max_deliver", d.max_deliver)?
            .set_default("ack_wait_ms", d.ack_wait.as_millis() as u64)?
            .set_default("linger_ms", d.linger.as_millis() as u64)
    }

    /// How the runner of `projection` consumes the stream.
    pub fn projector_config(&self, projection: &str) -> ProjectorConfig {
        ProjectorConfig {
            stream_name: self.stream_name.clone(),
            subject_prefix: self.subject_prefix.clone(),
            consumer_name: (projection == READ_MODELS).then(|| self.consumer_name.clone()),
            batch: self.batch.max(1),
            max_deliver: self.max_deliver,
            ack_wait: Duration::from_millis(self.ack_wait_ms.max(1000)),
            linger: Duration::from_millis(self.linger_ms),
            ..ProjectorConfig::default()
        }
    }

    /// Connects to the projector's database and the log database (the same pool when no
    /// `log_database_url` is set).
    pub async fn connect_databases(&self) -> anyhow::Result<(PgPool, PgPool)> {
        let pool = connect(&self.database_url, self.db_max_connections)
            .await
            .context("read-model database (APP_DATABASE_URL)")?;
        let log = match &self.log_database_url {
            Some(url) if !url.is_empty() && url != &self.database_url => {
                connect(url, self.db_max_connections)
                    .await
                    .context("log database (APP_LOG_DATABASE_URL)")?
            }
            _ => pool.clone(),
        };
        Ok((pool, log))
    }
}

async fn connect(url: &str, max: u32) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(url).context("not a valid PostgreSQL URL")?;
    Ok(eventlog::PgEventStore::pool_options(max.max(2))
        .connect_with(opts)
        .await?)
}
