//! Typed settings: defaults, then `APP_CONFIG_FILE` (TOML), then `APP_*` variables.

use serde::Deserialize;

#[derive(Clone, Deserialize)]
pub struct Settings {
    /// HTTP listen address (default `127.0.0.1:8082`).
    pub listen: String,
    /// Database holding the read models (may be a replica).
    pub database_url: String,
    /// Database holding the event log, for WebSocket back-fill (defaults to `database_url`).
    pub log_database_url: Option<String>,
    pub db_max_connections: u32,
    pub nats_url: String,
    pub stream_name: String,
    pub subject_prefix: String,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// Browser origins allowed to open the WebSocket; requests without an `Origin`
    /// header (non-browser clients) are always allowed. Comma-separated; `*` allows any.
    pub ws_allowed_origins: String,
    /// Frames queued per connection before a slow reader is disconnected.
    pub ws_queue_frames: usize,
    /// Largest WebSocket message and frame accepted (bytes).
    pub ws_max_message_bytes: usize,
    /// Interval of server pings; a connection silent for 3 intervals is closed.
    pub ws_ping_secs: u64,
    /// A user is offline this long after their last heartbeat (a dead node's users too).
    pub presence_timeout_secs: u64,
    /// How often each node announces its connected users.
    pub presence_heartbeat_secs: u64,
    /// Longest a read waits for `min_position` to be projected.
    pub min_position_wait_ms: u64,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("stream_name", &self.stream_name)
            .field("subject_prefix", &self.subject_prefix)
            .field("jwt_secret", &"<redacted>")
            .field("ws_allowed_origins", &self.ws_allowed_origins)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn load() -> Result<Self, config::ConfigError> {
        http_kit::settings::load(Self::defaults()?)
    }

    /// Built-in defaults only, ignoring the environment (tests start from these).
    pub fn from_defaults() -> Result<Self, config::ConfigError> {
        http_kit::settings::defaults_only(Self::defaults()?)
    }

    fn defaults() -> Result<http_kit::settings::Defaults, config::ConfigError> {
        http_kit::settings::builder()
            .set_default("listen", "127.0.0.1:8082")?
            .set_default("database_url", "postgres://postgres@127.0.0.1:5432/chat")?
            .set_default("db_max_connections", 16)?
            .set_default("nats_url", "nats://127.0.0.1:4222")?
            .set_default("stream_name", "CHAT_EVENTS")?
            .set_default("subject_prefix", "chat")?
            .set_default("jwt_secret", "")?
            .set_default("jwt_issuer", "chat")?
            .set_default("jwt_audience", "chat-api")?
            .set_default("ws_allowed_origins", "")?
            .set_default("ws_queue_frames", 256)?
            .set_default("ws_max_message_bytes", 64 * 1024)?
            .set_default("ws_ping_secs", 20)?
            .set_default("presence_timeout_secs", 30)?
            .set_default("presence_heartbeat_secs", 10)?
            .set_default("min_position_wait_ms", 5000)?
            .set_default("body_limit_bytes", 64 * 1024)?
            .set_default("request_timeout_ms", 10_000)
    }

    pub fn log_database_url(&self) -> &str {
        self.log_database_url
            .as_deref()
            .unwrap_or(&self.database_url)
    }

    /// The access-token settings (only verification is used here).
    pub fn auth_config(&self) -> http_kit::auth::AuthConfig {
        http_kit::auth::AuthConfig {
            jwt_secret: self.jwt_secret.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            ..http_kit::auth::AuthConfig::default()
        }
    }
}
