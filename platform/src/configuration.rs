//! The settings of single-node mode: each role's own, all read from the same `APP_*`
//! variables (and `APP_CONFIG_FILE`), and the one address they share.

use anyhow::Context;
use http_kit::settings::{ConfigError, Defaults, Layered};
use serde::Deserialize;

/// `Debug` shows no secret: safe to log.
#[derive(Debug)]
pub struct Settings {
    /// Where the one process listens (`APP_LISTEN`, default `127.0.0.1:8080`); the roles'
    /// own `listen` settings are not used.
    pub listen: String,
    pub command: command_api::configuration::Settings,
    pub query: query_api::configuration::Settings,
    pub projector: projector::configuration::Settings,
}

#[derive(Deserialize)]
struct Listen {
    listen: String,
}

impl Layered for Listen {
    fn defaults() -> Result<Defaults, ConfigError> {
        http_kit::settings::builder().set_default("listen", "127.0.0.1:8080")
    }
}

impl Settings {
    /// Defaults, `APP_CONFIG_FILE`, then `APP_*`, for every role.
    pub fn load() -> anyhow::Result<Self> {
        let Listen { listen } = Listen::load().context("listen address")?;
        Ok(Self {
            listen,
            command: command_api::configuration::Settings::load().context("command settings")?,
            query: query_api::configuration::Settings::load().context("query settings")?,
            projector: projector::configuration::Settings::load().context("projector settings")?,
        })
    }
}
