//! Typed settings, layered: built-in defaults, then an optional TOML file
//! (`APP_CONFIG_FILE`), then `APP_*` environment variables. Passed in explicitly;
//! there is no global.

use http_kit::settings::redact_url;
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone, Deserialize)]
pub struct Settings {
    /// Address the HTTP server binds, e.g. `127.0.0.1:8081`; port 0 picks a free one.
    pub listen: String,
    /// PostgreSQL holding the event log and credentials.
    pub database_url: String,
    /// Create the database named in `database_url` when it does not exist.
    pub create_database: bool,
    pub db_max_connections: u32,
    pub nats_url: String,
    /// JetStream stream that carries every event, and the subject prefix of its subjects.
    pub stream_name: String,
    pub subject_prefix: String,
    /// Run the log → JetStream relay in this process (one instance is active at a time).
    pub relay_enabled: bool,
    /// HS256 secret for access tokens, at least 32 bytes. Never logged.
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// Concurrent argon2 hashes allowed (each takes ~19 MiB and a core).
    pub hash_concurrency: usize,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    pub group_commit_max_batch: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("nats_url", &redact_url(&self.nats_url))
            .field("stream_name", &self.stream_name)
            .field("subject_prefix", &self.subject_prefix)
            .field("relay_enabled", &self.relay_enabled)
            .field("jwt_secret", &"<redacted>")
            .field("jwt_issuer", &self.jwt_issuer)
            .field("jwt_audience", &self.jwt_audience)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Defaults, then `APP_CONFIG_FILE` (TOML) if set, then `APP_*` variables.
    pub fn load() -> Result<Self, config::ConfigError> {
        http_kit::settings::load(Self::defaults()?)
    }

    /// Built-in defaults only, ignoring the environment (tests start from these).
    pub fn from_defaults() -> Result<Self, config::ConfigError> {
        http_kit::settings::defaults_only(Self::defaults()?)
    }

    fn defaults() -> Result<http_kit::settings::Defaults, config::ConfigError> {
        http_kit::settings::builder()
            .set_default("listen", "127.0.0.1:8081")?
            .set_default("database_url", "postgres://postgres@127.0.0.1:5432/chat")?
            .set_default("create_database", true)?
            .set_default("db_max_connections", 16)?
            .set_default("nats_url", "nats://127.0.0.1:4222")?
            .set_default("stream_name", "CHAT_EVENTS")?
            .set_default("subject_prefix", "chat")?
            .set_default("relay_enabled", true)?
            .set_default("jwt_secret", "")?
            .set_default("jwt_issuer", "chat")?
            .set_default("jwt_audience", "chat-api")?
            .set_default("access_ttl_secs", 900)?
            .set_default("refresh_ttl_secs", 30 * 24 * 3600)?
            .set_default(
                "hash_concurrency",
                std::thread::available_parallelism().map_or(2, |n| n.get()) as u64,
            )?
            .set_default("body_limit_bytes", 64 * 1024)?
            .set_default("request_timeout_ms", 10_000)?
            .set_default("group_commit_max_batch", 512)
    }

    pub fn auth_config(&self) -> crate::auth::AuthConfig {
        crate::auth::AuthConfig {
            jwt_secret: self.jwt_secret.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            access_ttl: Duration::from_secs(self.access_ttl_secs),
            refresh_ttl: Duration::from_secs(self.refresh_ttl_secs),
            hash_concurrency: self.hash_concurrency.max(1),
        }
    }
}
