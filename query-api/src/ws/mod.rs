//! The WebSocket live feed. (Being filled in: see the read-side issue.)

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::state::AppState;
use axum::Router;
use chrono::{DateTime, Utc};
use events::UserId;
use serde::Serialize;
use sqlx::PgPool;
use std::sync::Arc;

/// Handle to this node's live fan-out (cheap to clone).
#[derive(Clone)]
pub struct Live {}

/// What `GET /v1/presence` reports for one user.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PresenceInfo {
    pub user_id: UserId,
    /// `online` or `offline`.
    pub status: &'static str,
    pub last_seen: Option<DateTime<Utc>>,
}

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

    /// Presence of these users as this node knows it (all nodes' heartbeats).
    /// The caller filters by who may see whom.
    pub async fn presence_of(&self, users: &[UserId]) -> Vec<PresenceInfo> {
        users
            .iter()
            .map(|u| PresenceInfo {
                user_id: *u,
                status: "offline",
                last_seen: None,
            })
            .collect()
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
}
