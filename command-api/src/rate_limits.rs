//! The command side's rate limits ([`http_kit::rate_limit`]): logins per client IP and per
//! username, registrations per client IP, messages per user.

use std::net::{IpAddr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::http::request::Parts;
use http_kit::rate_limit::{Limit, RateLimitSettings};
use uuid::Uuid;

use crate::state::AppState;

pub struct RateLimits {
    pub login_ip: Limit<IpAddr>,
    pub login_username: Limit<String>,
    pub register_ip: Limit<IpAddr>,
    /// Messages sent, edited, and ephemeral messages.
    pub send: Limit<Uuid>,
    /// Attachments uploaded.
    pub upload: Limit<Uuid>,
    settings: RateLimitSettings,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            login_ip: settings.login_per_ip(),
            login_username: settings.login_per_username(),
            register_ip: settings.register_per_ip(),
            send: settings.send_per_user(),
            upload: settings.upload_per_user(),
            settings: settings.clone(),
        }
    }
}

/// The client's address, as the rate-limit settings say to find it (a proxy's header, else
/// the peer); `None` when neither tells. Found once per request, without copying the
/// headers. Never refuses.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Self(st.limits.settings.client_ip(&parts.headers, peer)))
    }
}
