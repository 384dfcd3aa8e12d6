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
    /// The nice value of the projector's threads (`APP_BACKGROUND_NICE`, default 10; 0: the
    /// process's own): under a load that fills the cores, accepting messages and delivering
    /// them live come first, and the read models and the search index catch up after (ADR 26).
    pub background_nice: i32,
    pub command: command_api::configuration::Settings,
    pub query: query_api::configuration::Settings,
    pub projector: projector::configuration::Settings,
}

#[derive(Deserialize)]
struct Own {
    listen: String,
    background_nice: i32,
}

impl Layered for Own {
    fn defaults() -> Result<Defaults, ConfigError> {
        http_kit::settings::builder()
            .set_default("listen", "127.0.0.1:8080")?
            .set_default("background_nice", DEFAULT_BACKGROUND_NICE)
    }
}

/// [`Settings::background_nice`] unless set.
pub const DEFAULT_BACKGROUND_NICE: i32 = 10;

impl Settings {
    /// Defaults, `APP_CONFIG_FILE`, then `APP_*`, for every role.
    pub fn load() -> anyhow::Result<Self> {
        let Own {
            listen,
            background_nice,
        } = Own::load().context("listen address and background priority")?;
        anyhow::ensure!(
            (0..=19).contains(&background_nice),
            "APP_BACKGROUND_NICE must be 0 to 19, not {background_nice}"
        );
        Ok(Self {
            listen,
            background_nice,
            command: command_api::configuration::Settings::load().context("command settings")?,
            query: query_api::configuration::Settings::load().context("query settings")?,
            projector: projector::configuration::Settings::load().context("projector settings")?,
        })
    }
}
