//! Shared application state handed to every handler.

use crate::auth::{JwtKeys, PasswordHasher};
use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::rooms::RoomCommands;
use eventlog::PgEventStore;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Cheap to clone (one shared allocation): axum clones the state for every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares; its fields are reached through `Deref`.
pub struct Shared {
    pub pool: PgPool,
    pub store: PgEventStore,
    pub rooms: RoomCommands<PgEventStore>,
    /// The data keys personal values are sealed under (ADR 23).
    pub keyring: Arc<vault::Keyring>,
    pub jwt: JwtKeys,
    pub hasher: PasswordHasher,
    pub refresh_ttl: Duration,
    pub metrics: Metrics,
    /// Core NATS, for typing and ephemeral messages (never stored). `None` while
    /// NATS was unreachable at start-up; it reconnects in the background.
    pub nats: Option<async_nats::Client>,
    pub settings: Arc<Settings>,
    pub limits: crate::rate_limits::RateLimits,
    /// Uploads and their blobs.
    pub attachments: crate::attachments::Attachments,
    /// Avatars' blobs.
    pub avatars: crate::avatars::Avatars,
    /// The OpenID Connect provider to sign in with, when one is configured.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl axum::extract::FromRef<AppState> for JwtKeys {
    fn from_ref(st: &AppState) -> JwtKeys {
        st.jwt.clone()
    }
}
