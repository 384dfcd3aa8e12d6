//! The command side's rate limits ([`http_kit::rate_limit`]): logins per client IP and per
//! username, registrations per client IP, messages per user.

use std::net::{IpAddr, SocketAddr};

use axum::extract::FromRequestParts;
use axum::extract::connect_info::ConnectInfo;
use axum::http::request::Parts;
use http_kit::rate_limit::{Limit, RateLimitSettings};
use uuid::Uuid;

pub struct RateLimits {
    pub login_ip: Limit<IpAddr>,
    pub login_username: Limit<String>,
    pub register_ip: Limit<IpAddr>,
    /// Messages sent, edited, and ephemeral messages.
    pub send: Limit<Uuid>,
    settings: RateLimitSettings,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            login_ip: settings.login_per_ip(),
            login_username: settings.login_per_username(),
            register_ip: settings.register_per_ip(),
            send: settings.send_per_user(),
            settings: settings.clone(),
        }
    }

    /// The client's address as the settings say to find it.
    pub fn client_ip(&self, client: &ClientAddr) -> Option<IpAddr> {
        self.settings.client_ip(&client.headers, client.peer)
    }
}

/// What tells a client's address: the peer and the request's headers. Never refuses.
pub struct ClientAddr {
    peer: Option<IpAddr>,
    headers: axum::http::HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
            headers: parts.headers.clone(),
        })
    }
}
