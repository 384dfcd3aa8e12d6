//! Typed settings: defaults, then `APP_CONFIG_FILE` (TOML), then `APP_*` variables.
//! The sections every service shares are `http_kit::settings`'.

use http_kit::settings::{Defaults, Layered, RequestLimits, ServiceSettings, TokenSettings};
use serde::Deserialize;

/// `Debug` shows no secret (the JWT secret, passwords in URLs): safe to log.
#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    /// Listens on `127.0.0.1:8082` by default; `database_url` holds the read models (may
    /// be a replica), `log_database_url` the event log for WebSocket back-fill.
    #[serde(flatten)]
    pub service: ServiceSettings,
    /// Only verification is used here.
    #[serde(flatten)]
    pub tokens: TokenSettings,
    #[serde(flatten)]
    pub limits: RequestLimits,
    /// The search index searches read (`APP_SEARCH_BACKEND`, `APP_DATA_DIR`, ...).
    #[serde(flatten)]
    pub search: search::SearchSettings,
    /// Where attachments are kept (`APP_BLOB_BACKEND`, ...; the local default is the data
    /// directory's `blobs/`, as command-api's).
    #[serde(flatten)]
    pub blobs: blobs::settings::BlobSettings,
    /// Browser origins allowed to open the WebSocket; requests without an `Origin`
    /// header (non-browser clients) are always allowed. Comma-separated; `*` allows any.
    pub ws_allowed_origins: String,
    /// The built web client served at `/` (`APP_WEB_DIR`, default `web/dist`, relative
    /// to the working directory; `scripts/run.sh` builds it and passes its path). Without
    /// an `index.html` there, `/` answers 404 `web_client_not_built`.
    pub web_dir: std::path::PathBuf,
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
    /// Presence changes are told to clients at most once per this window (ms), batched:
    /// the first change after a quiet window goes out at once, later ones wait for the
    /// window's end and go out together (ADR 19).
    pub presence_batch_ms: u64,
    /// Typing notices are told to a room at most once per this window (ms), batched the
    /// same way (ADR 19).
    pub typing_batch_ms: u64,
    /// Longest a read waits for `min_position` to be projected.
    pub min_position_wait_ms: u64,
    /// How often the read models' epoch is re-read (`APP_EPOCH_POLL_MS`), besides on every
    /// `chat_projection_epoch` notification: the fallback for a missed notification, a
    /// reconnect, or a database that cannot LISTEN (a hot standby).
    pub epoch_poll_ms: u64,
    /// Server administrators by username, comma-separated (`APP_ADMIN_USERNAMES`), besides
    /// the first user registered, who always is one. The same in command-api.
    pub admin_usernames: String,
    /// Days a room keeps its messages unless it sets its own period (`APP_RETENTION_DAYS`;
    /// 0: for ever). The same as command-api's, whose job expires them: here it is only told
    /// to clients (`GET /v1/server`).
    pub retention_days: u32,
}

impl Layered for Settings {
    /// The log's database, when it is not the read models' (`APP_LOG_DATABASE_URL`).
    const OPTIONAL: &'static [&'static str] = &["log_database_url"];

    fn defaults() -> Result<Defaults, config::ConfigError> {
        blobs::settings::BlobSettings::defaults(search::SearchSettings::defaults(
            http_kit::settings::api_defaults("127.0.0.1:8082")?,
        )?)?
        .set_default("ws_allowed_origins", "")?
        .set_default("web_dir", "web/dist")?
        .set_default("ws_queue_frames", 256)?
        .set_default("ws_max_message_bytes", 64 * 1024)?
        .set_default("ws_ping_secs", 20)?
        .set_default("presence_timeout_secs", 30)?
        .set_default("presence_heartbeat_secs", 10)?
        .set_default("presence_batch_ms", 1000)?
        .set_default("typing_batch_ms", 500)?
        .set_default("min_position_wait_ms", 5000)?
        .set_default("epoch_poll_ms", 2000)?
        .set_default("admin_usernames", "")?
        .set_default("retention_days", 0)
    }
}
