//! The WebSocket live feed. (Being filled in: see the read-side issue.)

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::state::AppState;
use axum::Router;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct Live {}

impl Live {
    pub async fn start(
        _settings: Arc<Settings>,
        _pool: PgPool,
        _log_pool: PgPool,
        _nats: async_nats::Client,
        _metrics: Metrics,
    ) -> anyhow::Result<Live> {
        Ok(Live {})
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
}
