//! Typed settings, layered: built-in defaults, then an optional TOML file
//! (`APP_CONFIG_FILE`), then `APP_*` environment variables. Passed in explicitly;
//! there is no global. The sections every service shares are `http_kit::settings`'.

use http_kit::settings::{Defaults, Layered, RequestLimits, ServiceSettings, TokenSettings};
use serde::Deserialize;
use std::time::Duration;

/// `Debug` shows no secret (the JWT secret, passwords in URLs): safe to log.
#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    /// Listens on `127.0.0.1:8081` by default.
    #[serde(flatten)]
    pub service: ServiceSettings,
    #[serde(flatten)]
    pub tokens: TokenSettings,
    #[serde(flatten)]
    pub limits: RequestLimits,
    /// Create the database named in `database_url` when it does not exist.
    pub create_database: bool,
    /// Run the log → JetStream relay in this process (one instance is active at a time).
    pub relay_enabled: bool,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// Concurrent argon2 hashes allowed (each takes ~19 MiB and a core).
    pub hash_concurrency: usize,
    pub group_commit_max_batch: usize,
    /// The platform's data directory (`APP_DATA_DIR`): attachments are kept in its
    /// `blobs/` unless `APP_BLOB_DIR` says otherwise.
    pub data_dir: std::path::PathBuf,
    /// Where attachments are kept and what is accepted (`APP_BLOB_BACKEND`, ...).
    #[serde(flatten)]
    pub blobs: blobs::settings::BlobSettings,
    /// Server administrators by username, comma-separated (`APP_ADMIN_USERNAMES`), besides
    /// the first user registered, who always is one. The same in query-api.
    pub admin_usernames: String,
    /// Seal personal values (message bodies, names, attachment names) in the log under their
    /// owner's data key (`APP_SEAL_PERSONAL_DATA`, ADR 23). Off only to measure what sealing
    /// costs: what is written then cannot be erased from the log.
    pub seal_personal_data: bool,
    /// Days a room keeps its messages unless it sets its own period (`APP_RETENTION_DAYS`);
    /// 0: for ever. Expired by the retention job ([`crate::retention`]).
    pub retention_days: u32,
    /// How often the retention job looks for expired messages (`APP_RETENTION_INTERVAL_SECS`).
    pub retention_interval_secs: u64,
    /// Single sign-on with an OpenID Connect provider (`APP_OIDC_*`); off without an issuer.
    #[serde(flatten)]
    pub oidc: OidcSettings,
}

/// An OpenID Connect provider to sign in with, beside passwords. `Debug` hides the secret.
#[derive(Clone, Deserialize)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its discovery document states it; empty: off.
    pub oidc_issuer: String,
    pub oidc_client_id: String,
    pub oidc_client_secret: String,
    /// Where the provider sends the browser back: this service's `/v1/auth/oidc/callback`
    /// as the browser reaches it (registered with the provider).
    pub oidc_redirect_uri: String,
    /// The name on the web client's "Sign in with …" button.
    pub oidc_provider_name: String,
}

impl OidcSettings {
    pub fn enabled(&self) -> bool {
        !self.oidc_issuer.is_empty()
    }
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_client_id", &self.oidc_client_id)
            .field("oidc_redirect_uri", &self.oidc_redirect_uri)
            .field("oidc_provider_name", &self.oidc_provider_name)
            .finish_non_exhaustive()
    }
}

impl Layered for Settings {
    fn defaults() -> Result<Defaults, config::ConfigError> {
        blobs::settings::BlobSettings::defaults(http_kit::settings::api_defaults(
            "127.0.0.1:8081",
        )?)?
        .set_default("create_database", true)?
        .set_default("data_dir", "data")?
        .set_default("relay_enabled", true)?
        .set_default("access_ttl_secs", 900)?
        .set_default("refresh_ttl_secs", 30 * 24 * 3600)?
        .set_default(
            "hash_concurrency",
            std::thread::available_parallelism().map_or(2, |n| n.get()) as u64,
        )?
        .set_default("group_commit_max_batch", 512)?
        .set_default("admin_usernames", "")?
        .set_default("seal_personal_data", true)?
        .set_default("retention_days", 0)?
        .set_default("retention_interval_secs", 3600)?
        .set_default("oidc_issuer", "")?
        .set_default("oidc_client_id", "")?
        .set_default("oidc_client_secret", "")?
        .set_default("oidc_redirect_uri", "")?
        .set_default("oidc_provider_name", "SSO")
    }
}

impl Settings {
    /// The server's default retention period (`None`: messages are kept for ever); a value
    /// out of range is refused at start-up.
    pub fn default_retention(
        &self,
    ) -> Result<Option<events::retention::RetentionDays>, events::values::ValidationError> {
        events::retention::server_default(self.retention_days)
    }

    pub fn auth_config(&self) -> crate::auth::AuthConfig {
        crate::auth::AuthConfig {
            access_ttl: Duration::from_secs(self.access_ttl_secs),
            refresh_ttl: Duration::from_secs(self.refresh_ttl_secs),
            hash_concurrency: self.hash_concurrency.max(1),
            ..self.tokens.auth_config()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use http_kit::settings::Layered as _;

    #[test]
    fn debug_output_shows_no_secret() {
        let mut settings = Settings::from_defaults().expect("defaults");
        settings.tokens.jwt_secret = "jwt-secret-that-must-not-leak-0123456789".into();
        settings.service.database_url = "postgres://chat:db-password@db:5432/chat".into();
        settings.oidc.oidc_client_secret = "oidc-client-secret-that-must-not-leak".into();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("jwt-secret-that-must-not-leak"), "{shown}");
        assert!(!shown.contains("db-password"), "{shown}");
        assert!(!shown.contains("oidc-client-secret"), "{shown}");
        assert!(shown.contains("db:5432/chat"), "{shown}");
    }
}
