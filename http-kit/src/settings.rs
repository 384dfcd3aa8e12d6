//! Layered settings, the same for every service: built-in defaults, then an
//! optional TOML file named by `APP_CONFIG_FILE`, then `APP_*` environment variables.

use config::builder::DefaultState;
use config::{Config, ConfigBuilder, ConfigError, Environment, File};
use serde::de::DeserializeOwned;

pub type Defaults = ConfigBuilder<DefaultState>;

/// Defaults, `APP_CONFIG_FILE` if set, then `APP_*` variables.
pub fn load<T: DeserializeOwned>(defaults: Defaults) -> Result<T, ConfigError> {
    let mut builder = defaults;
    if let Ok(path) = std::env::var("APP_CONFIG_FILE") {
        builder = builder.add_source(File::with_name(&path));
    }
    builder
        .add_source(Environment::with_prefix("APP").try_parsing(true))
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

/// Hides a password in a URL (`postgres://user:secret@host` → `postgres://user:***@host`),
/// for logging settings.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let colon = s + 3 + url[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &url[..colon], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
