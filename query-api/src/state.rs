//! Shared application state handed to every handler.

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::ws::Live;
use http_kit::auth::JwtKeys;
use search::SearchBackend;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
pub struct AppState {
    /// The read models (may be a replica).
    pub pool: PgPool,
    /// The event log, for WebSocket back-fill.
    pub log_pool: PgPool,
    pub jwt: JwtKeys,
    pub nats: async_nats::Client,
    /// Live fan-out of room events, typing, ephemeral messages and presence.
    pub live: Live,
    pub metrics: Metrics,
    /// The message search index (read only).
    pub search: Arc<dyn SearchBackend>,
    /// Attachments' bytes (read only here).
    pub blobs: blobs::BlobStore,
    pub settings: Arc<Settings>,
    /// The epoch of the read models (`projection_checkpoints.epoch` of `read_models`), kept
    /// current by [`crate::epoch::watch`].
    pub epoch: watch::Receiver<i64>,
    /// Frames each WebSocket may send ([`http_kit::rate_limit`]), by connection.
    pub ws_frames: Arc<http_kit::rate_limit::Limit<crate::ws::hub::ConnId>>,
    /// What `GET /v1/server` answers, made from the settings at start-up.
    pub server: Arc<crate::routes::server::ServerInfo>,
}

impl AppState {
    /// The read models' epoch as this node knows it now.
    pub fn epoch(&self) -> i64 {
        *self.epoch.borrow()
    }
}

impl axum::extract::FromRef<AppState> for JwtKeys {
    fn from_ref(st: &AppState) -> JwtKeys {
        st.jwt.clone()
    }
}
