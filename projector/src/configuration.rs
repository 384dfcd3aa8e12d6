//! Typed settings: defaults, then `APP_CONFIG_FILE` (TOML), then `APP_*` variables.
//! The section every service shares is `http_kit::settings`'.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use http_kit::secret::SecretUrl;
use http_kit::settings::{Defaults, Layered, ServiceSettings};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use search::SearchSettings;

use crate::search_index::SEARCH_LINGER;
use crate::{ProjectorConfig, READ_MODELS, SEARCH, consumer_name};

/// Typed settings, layered: built-in defaults, then an optional TOML file (`APP_CONFIG_FILE`),
/// then `APP_*` environment variables. `Debug` shows no secret (passwords in URLs): safe to
/// log.
#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    /// Health and metrics on `127.0.0.1:8083` by default; `database_url` holds the read
    /// models, the checkpoints and the dead letters, `log_database_url` the event log
    /// (defaults to `database_url`); 8 connections each by default.
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// The search index the `search` projection writes (`APP_SEARCH_BACKEND`, `APP_DATA_DIR`,
    /// `APP_OPENSEARCH_URL`, ...).
    #[serde(flatten)]
    pub search: SearchSettings,
    /// The durable consumer of the read models (default `read-models`, the name every
    /// projection's consumer gets from its own name anyway; see [`crate::consumer_name`]).
    pub consumer_name: String,
    pub batch: usize,
    pub max_deliver: i64,
    pub ack_wait_ms: u64,
    /// How long a batch keeps collecting after its first event (see `ProjectorConfig::linger`).
    pub linger_ms: u64,
    /// The same for the search projection (`APP_SEARCH_LINGER_MS`, at least `linger_ms`):
    /// each of its batches is an index commit, so longer batches cost less CPU (fewer
    /// segments to write and merge) and make a message searchable later.
    pub search_linger_ms: u64,
}

impl Layered for Settings {
    /// The log's database, when it is not the read models' (`APP_LOG_DATABASE_URL`).
    const OPTIONAL: &'static [&'static str] = &["log_database_url"];

    fn defaults() -> Result<Defaults, config::ConfigError> {
        let d = ProjectorConfig::default();
        SearchSettings::defaults(ServiceSettings::defaults(
            http_kit::settings::builder(),
            "127.0.0.1:8083",
        )?)?
        .set_default("db_max_connections", 8)?
        .set_default("stream_name", d.stream_name)?
        .set_default("subject_prefix", d.subject_prefix)?
        .set_default("consumer_name", consumer_name(READ_MODELS))?
        .set_default("batch", d.batch as u64)?
        .set_default("max_deliver", d.max_deliver)?
        .set_default("ack_wait_ms", d.ack_wait.as_millis() as u64)?
        .set_default("linger_ms", d.linger.as_millis() as u64)?
        .set_default("search_linger_ms", SEARCH_LINGER.as_millis() as u64)
    }
}

impl Settings {
    /// How the runner of `projection` consumes the stream.
    pub fn projector_config(&self, projection: &str) -> ProjectorConfig {
        ProjectorConfig {
            stream_name: self.service.stream_name.clone(),
            subject_prefix: self.service.subject_prefix.clone(),
            consumer_name: (projection == READ_MODELS).then(|| self.consumer_name.clone()),
            batch: self.batch.max(1),
            max_deliver: self.max_deliver,
            ack_wait: Duration::from_millis(self.ack_wait_ms.max(1000)),
            // Each search batch is an index commit: it lingers longer (still well under 1 s).
            linger: match projection {
                SEARCH => Duration::from_millis(self.linger_ms.max(self.search_linger_ms)),
                _ => Duration::from_millis(self.linger_ms),
            },
            ..ProjectorConfig::default()
        }
    }

    /// Connects to the projector's database and the log database (the same pool when no
    /// `log_database_url` is set).
    pub async fn connect_databases(&self) -> anyhow::Result<(PgPool, PgPool)> {
        let service = &self.service;
        let pool = connect(
            &service.database_url,
            service.db_max_connections,
            "APP_DATABASE_URL",
        )
        .await
        .context("read-model database (APP_DATABASE_URL)")?;
        let log = match service.log_database_url() {
            url if url != &service.database_url => {
                connect(url, service.db_max_connections, "APP_LOG_DATABASE_URL")
                    .await
                    .context("log database (APP_LOG_DATABASE_URL)")?
            }
            _ => pool.clone(),
        };
        Ok((pool, log))
    }
}

/// Waits while the database is not there yet (`eventlog::pool::connect_waiting`).
async fn connect(url: &SecretUrl, max: u32, what: &str) -> anyhow::Result<PgPool> {
    let opts =
        PgConnectOptions::from_str(url.expose_secret()).context("not a valid PostgreSQL URL")?;
    Ok(eventlog::pool::connect_waiting(
        eventlog::PgEventStore::pool_options(max.max(2)),
        opts,
        what,
    )
    .await?)
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use http_kit::settings::Layered as _;

    fn with(overrides: &[(&str, &str)]) -> Settings {
        let mut b = Settings::defaults().expect("defaults");
        for (k, v) in overrides {
            b = b.set_override(*k, *v).expect("override");
        }
        http_kit::settings::defaults_only(b).expect("settings")
    }

    #[test]
    fn the_defaults_are_the_projectors() {
        let s = Settings::from_defaults().expect("defaults");
        assert_eq!(s.service.listen, "127.0.0.1:8083");
        assert_eq!(s.service.db_max_connections, 8);
        assert_eq!(s.service.stream_name, "CHAT_EVENTS");
        assert_eq!(s.service.subject_prefix, "chat");
        assert_eq!(s.consumer_name, "read-models");
        let c = s.projector_config(crate::READ_MODELS);
        assert_eq!(c.consumer_name.as_deref(), Some("read-models"));
        assert_eq!((c.batch, c.max_deliver), (500, 20));
        assert_eq!(c.ack_wait.as_millis(), 30_000);
        assert_eq!(c.linger.as_millis(), 10);
        assert_eq!(s.projector_config(crate::SEARCH).linger.as_millis(), 100);
    }

    #[test]
    fn the_search_projection_lingers_as_long_as_it_is_told_and_at_least_as_the_others() {
        let s = with(&[("search_linger_ms", "400")]);
        assert_eq!(s.projector_config(crate::SEARCH).linger.as_millis(), 400);
        assert_eq!(
            s.projector_config(crate::READ_MODELS).linger.as_millis(),
            10
        );
        let s = with(&[("search_linger_ms", "5"), ("linger_ms", "50")]);
        assert_eq!(s.projector_config(crate::SEARCH).linger.as_millis(), 50);
    }

    #[test]
    fn numbers_given_as_text_keep_their_value() {
        // As environment variables arrive: text.
        let s = with(&[
            ("db_max_connections", "4"),
            ("batch", "7"),
            ("max_deliver", "3"),
            ("ack_wait_ms", "2000"),
            ("linger_ms", "0"),
        ]);
        assert_eq!(s.service.db_max_connections, 4);
        assert_eq!(
            (s.batch, s.max_deliver, s.ack_wait_ms, s.linger_ms),
            (7, 3, 2000, 0)
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let s = with(&[
            ("database_url", "postgres://chat:db-password@db:5432/chat"),
            (
                "log_database_url",
                "postgres://chat:log-password@log:5432/chat",
            ),
            ("nats_url", "nats://user:nats-password@nats:4222"),
        ]);
        let shown = format!("{s:?}");
        for secret in ["db-password", "log-password", "nats-password"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("db:5432/chat"), "{shown}");
    }
}
