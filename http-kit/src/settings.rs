//! Layered settings, the same for every service: built-in defaults, then an
//! optional TOML file named by `APP_CONFIG_FILE`, then `APP_*` environment variables.
//!
//! The settings every service shares are declared here once, as sections a service's
//! `Settings` flattens into its own (`#[serde(flatten)]`), each with its defaults:
//! [`ServiceSettings`] (listen address, databases, NATS, the event stream),
//! [`TokenSettings`] (access tokens) and [`RequestLimits`]. Their keys stay flat
//! (`APP_DATABASE_URL`, `APP_JWT_SECRET`, ...), the same in every service.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

pub use config::ConfigError;
use config::builder::DefaultState;
use config::{Config, ConfigBuilder, Environment, File};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

pub use crate::secret::redact_url;
use crate::secret::{ExposeSecret, SecretString, SecretUrl};

pub type Defaults = ConfigBuilder<DefaultState>;

/// Defaults, `APP_CONFIG_FILE` if set, then `APP_*` variables.
///
/// Environment values stay text (no guessing of types): a JWT secret made only of digits
/// stays that secret. Each field parses its own text, numbers and booleans included.
pub fn load<T: DeserializeOwned>(defaults: Defaults) -> Result<T, ConfigError> {
    let mut builder = defaults;
    if let Ok(path) = std::env::var("APP_CONFIG_FILE") {
        builder = builder.add_source(File::with_name(&path));
    }
    builder
        .add_source(Environment::with_prefix("APP"))
        .build()?
        .try_deserialize()
}

/// The built-in defaults only, ignoring file and environment (tests start here).
pub fn defaults_only<T: DeserializeOwned>(defaults: Defaults) -> Result<T, ConfigError> {
    defaults.build()?.try_deserialize()
}

/// An empty builder to put defaults on.
pub fn builder() -> Defaults {
    Config::builder()
}

/// Settings layered the same way in every service: a service states its built-in
/// [`Layered::defaults`] and gets [`Layered::load`] and [`Layered::from_defaults`].
pub trait Layered: DeserializeOwned {
    /// The built-in defaults.
    fn defaults() -> Result<Defaults, ConfigError>;

    /// Defaults, then `APP_CONFIG_FILE` (TOML) if set, then `APP_*` variables.
    fn load() -> Result<Self, ConfigError> {
        load(Self::defaults()?)
    }

    /// Built-in defaults only, ignoring file and environment (tests start from these).
    fn from_defaults() -> Result<Self, ConfigError> {
        defaults_only(Self::defaults()?)
    }

    /// Settings this service reads that have no built-in default (read when given).
    const OPTIONAL: &'static [&'static str] = &[];

    /// Every setting this service reads, by key (`APP_<KEY>` in upper case) with its
    /// built-in default as text (`None` for [`Layered::OPTIONAL`] ones). Documentation
    /// and deployment files are checked against it.
    fn keys() -> Result<BTreeMap<String, Option<String>>, ConfigError> {
        let defaults: BTreeMap<String, config::Value> =
            Self::defaults()?.build()?.try_deserialize()?;
        let mut keys: BTreeMap<String, Option<String>> = defaults
            .into_iter()
            .map(|(key, value)| (key, Some(value.to_string())))
            .collect();
        for key in Self::OPTIONAL {
            keys.entry((*key).to_owned()).or_insert(None);
        }
        Ok(keys)
    }
}

/// The defaults of a service whose API takes access tokens: those of [`ServiceSettings`]
/// (listening on `listen`), [`TokenSettings`] and [`RequestLimits`].
pub fn api_defaults(listen: &str) -> Result<Defaults, ConfigError> {
    RequestLimits::defaults(TokenSettings::defaults(ServiceSettings::defaults(
        builder(),
        listen,
    )?)?)
}

/// Where a service listens and what it connects to: every service has these.
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceSettings {
    /// Address the HTTP server binds, e.g. `127.0.0.1:8081`; port 0 picks a free one.
    pub listen: String,
    /// The service's PostgreSQL database (for a read-side service, the read models).
    pub database_url: SecretUrl,
    /// The database holding the event log, when it is not `database_url` (read-side
    /// services reading the log from elsewhere); see [`ServiceSettings::log_database_url`].
    pub log_database_url: Option<SecretUrl>,
    #[serde(deserialize_with = "number")]
    pub db_max_connections: u32,
    pub nats_url: SecretUrl,
    /// JetStream stream that carries every event, and the prefix of its subjects.
    pub stream_name: String,
    pub subject_prefix: String,
}

impl ServiceSettings {
    /// The defaults of every service; `listen` is the service's own default address.
    pub fn defaults(builder: Defaults, listen: &str) -> Result<Defaults, ConfigError> {
        builder
            .set_default("listen", listen)?
            .set_default("database_url", "postgres://postgres@127.0.0.1:5432/chat")?
            .set_default("db_max_connections", 16)?
            .set_default("nats_url", "nats://127.0.0.1:4222")?
            .set_default("stream_name", "CHAT_EVENTS")?
            .set_default("subject_prefix", "chat")
    }

    /// The event log's database: `log_database_url` when set (and not empty), else
    /// `database_url`.
    pub fn log_database_url(&self) -> &SecretUrl {
        match &self.log_database_url {
            Some(url) if !url.expose_secret().is_empty() => url,
            _ => &self.database_url,
        }
    }
}

/// Access tokens (HS256 JWTs): services that issue or verify them.
#[derive(Clone, Debug, Deserialize)]
pub struct TokenSettings {
    /// HS256 secret, at least 32 bytes. Never logged.
    pub jwt_secret: SecretString,
    pub jwt_issuer: String,
    pub jwt_audience: String,
}

impl TokenSettings {
    /// No secret (a service refuses to start without one), issuer `chat`, audience `chat-api`.
    pub fn defaults(builder: Defaults) -> Result<Defaults, ConfigError> {
        builder
            .set_default("jwt_secret", "")?
            .set_default("jwt_issuer", "chat")?
            .set_default("jwt_audience", "chat-api")
    }

    /// The access-token settings; what is not configured here (lifetimes, hashing)
    /// keeps [`crate::auth::AuthConfig`]'s defaults.
    pub fn auth_config(&self) -> crate::auth::AuthConfig {
        crate::auth::AuthConfig {
            jwt_secret: self.jwt_secret.expose_secret().to_owned(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            ..crate::auth::AuthConfig::default()
        }
    }
}

/// Limits of an HTTP API's requests (see [`crate::service::limit`]).
#[derive(Clone, Debug, Deserialize)]
pub struct RequestLimits {
    /// Largest request body accepted.
    #[serde(deserialize_with = "number")]
    pub body_limit_bytes: usize,
    /// A request still running after this long is answered 503 `unavailable`.
    #[serde(deserialize_with = "number")]
    pub request_timeout_ms: u64,
    /// A request body that has not fully arrived this long after the previous chunk (a
    /// client that stalls or promised more than it sends) is answered 408
    /// `request_timeout`. Below `request_timeout_ms`, so the client's fault is told as such.
    #[serde(deserialize_with = "number")]
    pub body_timeout_ms: u64,
    /// How often one client may do one thing ([`crate::rate_limit`]).
    #[serde(flatten)]
    pub rate: crate::rate_limit::RateLimitSettings,
}

impl RequestLimits {
    /// 64 KiB bodies, 10 s per request, 5 s between a body's chunks.
    pub fn defaults(builder: Defaults) -> Result<Defaults, ConfigError> {
        builder
            .set_default("body_limit_bytes", 64 * 1024)?
            .set_default("request_timeout_ms", 10_000)?
            .set_default("body_timeout_ms", 5_000)
            .and_then(crate::rate_limit::RateLimitSettings::defaults)
    }
}

/// A number given as a number (defaults, TOML) or as text (environment variables).
///
/// Fields of a flattened section need this: serde hands them the raw value, which from
/// the environment is text, instead of letting `config` convert it.
pub(crate) fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + FromStr,
    <T as FromStr>::Err: Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(u64),
        Text(String),
    }
    match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(n) => {
            T::try_from(n).map_err(|_| D::Error::custom(format!("{n} is out of range")))
        }
        NumberOrText::Text(s) => s.trim().parse().map_err(D::Error::custom),
    }
}

/// A boolean given as a boolean (defaults, TOML) or as text (`true`/`false`, `1`/`0`, from
/// environment variables): [`number`]'s reason, for flags.
pub(crate) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum FlagOrText {
        Flag(bool),
        Text(String),
    }
    match FlagOrText::deserialize(deserializer)? {
        FlagOrText::Flag(b) => Ok(b),
        FlagOrText::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(D::Error::custom(format!("{other:?} is not true or false"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Example {
        #[serde(flatten)]
        service: ServiceSettings,
        #[serde(flatten)]
        tokens: TokenSettings,
        #[serde(flatten)]
        limits: RequestLimits,
        own: u32,
    }

    fn example(overrides: &[(&str, &str)]) -> Example {
        let mut b = api_defaults("127.0.0.1:1")
            .and_then(|b| b.set_default("own", 7))
            .expect("defaults");
        for (k, v) in overrides {
            b = b.set_override(*k, *v).expect("override");
        }
        defaults_only(b).expect("settings")
    }

    #[test]
    fn every_section_has_defaults() {
        let e = example(&[]);
        assert_eq!(e.service.listen, "127.0.0.1:1");
        assert_eq!(e.service.db_max_connections, 16);
        assert_eq!(e.service.stream_name, "CHAT_EVENTS");
        assert_eq!(e.tokens.jwt_issuer, "chat");
        assert_eq!(e.limits.body_limit_bytes, 64 * 1024);
        assert_eq!(e.own, 7);
        assert_eq!(e.service.log_database_url(), &e.service.database_url);
    }

    #[test]
    fn numbers_and_secrets_given_as_text_keep_their_value() {
        // As environment variables arrive: text, the secret made only of digits.
        let digits = "12345678901234567890123456789012345678901234567890";
        let e = example(&[
            ("db_max_connections", "3"),
            ("request_timeout_ms", "250"),
            ("own", "9"),
            ("jwt_secret", digits),
            ("log_database_url", "postgres://log@h/log"),
        ]);
        assert_eq!(e.service.db_max_connections, 3);
        assert_eq!(e.limits.request_timeout_ms, 250);
        assert_eq!(e.own, 9);
        assert_eq!(e.tokens.jwt_secret.expose_secret(), digits);
        assert_eq!(
            e.service.log_database_url().expose_secret(),
            "postgres://log@h/log"
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let e = example(&[
            ("jwt_secret", "the-jwt-secret-0123456789abcdef0123"),
            ("database_url", "postgres://chat:db-password@db:5432/chat"),
            ("log_database_url", "postgres://h/log?password=log-password"),
            ("nats_url", "nats://user:nats-password@nats:4222"),
        ]);
        let shown = format!("{e:?}");
        for secret in [
            "the-jwt-secret",
            "db-password",
            "log-password",
            "nats-password",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("db:5432/chat"), "{shown}");
    }
}
