//! Rate limits (GCRA, the `governor` crate): how often one key (a client IP, a username,
//! a user) may do one thing. Over the limit is a 429 `rate_limited` with `Retry-After`, and
//! `chat_rate_limited_total{limit}` counts it. Each limit is configured as a count per
//! period, which is also its burst; 0 turns it off (see [`RateLimitSettings`]).
//!
//! The keys are bounded in memory: every [`SWEEP_EVERY`] checks, keys whose bucket is full
//! again are forgotten.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::settings::{ConfigError, Defaults};

/// How many checks of one limit between sweeps of its forgotten keys.
pub const SWEEP_EVERY: u64 = 4096;

/// The limits, as `APP_RATE_*` settings. A count of 0 turns that limit off;
/// `rate_limit_enabled = false` turns every one off (load tests that register thousands of
/// users from one address).
#[derive(Clone, Debug, Deserialize)]
pub struct RateLimitSettings {
    #[serde(deserialize_with = "crate::settings::flag")]
    pub rate_limit_enabled: bool,
    /// Logins per client IP per minute.
    #[serde(deserialize_with = "crate::settings::number")]
    pub rate_login_per_ip_per_minute: u32,
    /// Logins per username per minute (password guessing spread over many addresses).
    #[serde(deserialize_with = "crate::settings::number")]
    pub rate_login_per_username_per_minute: u32,
    /// Registrations per client IP per hour.
    #[serde(deserialize_with = "crate::settings::number")]
    pub rate_register_per_ip_per_hour: u32,
    /// Messages (sent, edited, ephemeral) per user per 10 seconds.
    #[serde(deserialize_with = "crate::settings::number")]
    pub rate_send_per_user_per_10s: u32,
    /// Attachments uploaded per user per minute.
    #[serde(deserialize_with = "crate::settings::number")]
    pub rate_upload_per_user_per_minute: u32,
    /// Frames a WebSocket may send per 10 seconds.
    #[serde(deserialize_with = "crate::settings::number")]
    pub rate_ws_frames_per_10s: u32,
    /// The header a reverse proxy in front puts the client's address in (its last entry is
    /// taken, the one the nearest proxy added), e.g. `x-forwarded-for`; empty: the peer's
    /// address. Without it behind a proxy, every client shares the proxy's IP limits.
    pub rate_client_ip_header: String,
}

impl RateLimitSettings {
    /// 20 logins per IP and 10 per username a minute, 30 registrations per IP an hour, 50
    /// messages per user and 200 frames per socket per 10 seconds: far above what a person
    /// does, far below what a script needs to guess passwords or flood a room.
    pub fn defaults(builder: Defaults) -> Result<Defaults, ConfigError> {
        builder
            .set_default("rate_limit_enabled", true)?
            .set_default("rate_login_per_ip_per_minute", 20)?
            .set_default("rate_login_per_username_per_minute", 10)?
            .set_default("rate_register_per_ip_per_hour", 30)?
            .set_default("rate_send_per_user_per_10s", 50)?
            .set_default("rate_upload_per_user_per_minute", 30)?
            .set_default("rate_ws_frames_per_10s", 200)?
            .set_default("rate_client_ip_header", "")
    }

    /// The client's address: the last entry of `rate_client_ip_header` when it is set and
    /// holds an address, else the peer's.
    pub fn client_ip(
        &self,
        headers: &axum::http::HeaderMap,
        peer: Option<IpAddr>,
    ) -> Option<IpAddr> {
        if !self.rate_client_ip_header.is_empty()
            && let Some(ip) = headers
                .get_all(self.rate_client_ip_header.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
        peer
    }

    fn limit<K: Hash + Eq + Clone>(
        &self,
        name: &'static str,
        count: u32,
        period: Duration,
    ) -> Limit<K> {
        Limit::new(
            name,
            if self.rate_limit_enabled { count } else { 0 },
            period,
        )
    }

    pub fn login_per_ip(&self) -> Limit<IpAddr> {
        self.limit(
            "login_ip",
            self.rate_login_per_ip_per_minute,
            Duration::from_secs(60),
        )
    }

    pub fn login_per_username(&self) -> Limit<String> {
        self.limit(
            "login_username",
            self.rate_login_per_username_per_minute,
            Duration::from_secs(60),
        )
    }

    pub fn register_per_ip(&self) -> Limit<IpAddr> {
        self.limit(
            "register_ip",
            self.rate_register_per_ip_per_hour,
            Duration::from_secs(3600),
        )
    }

    pub fn upload_per_user(&self) -> Limit<Uuid> {
        self.limit(
            "upload_user",
            self.rate_upload_per_user_per_minute,
            Duration::from_secs(60),
        )
    }

    pub fn send_per_user(&self) -> Limit<Uuid> {
        self.limit(
            "send_user",
            self.rate_send_per_user_per_10s,
            Duration::from_secs(10),
        )
    }

    /// Each socket's frames, by a key of the socket.
    pub fn ws_frames<K: Hash + Eq + Clone>(&self) -> Limit<K> {
        self.limit(
            "ws_frames",
            self.rate_ws_frames_per_10s,
            Duration::from_secs(10),
        )
    }
}

/// One limit: `count` per `period` for each key, in bursts of up to `count`.
pub struct Limit<K: Hash + Eq + Clone> {
    name: &'static str,
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    /// `count` 0: no limit.
    pub fn new(name: &'static str, count: u32, period: Duration) -> Self {
        let limiter = NonZeroU32::new(count).and_then(|burst| {
            Quota::with_period(period / burst.get())
                .map(|q| DefaultKeyedRateLimiter::keyed(q.allow_burst(burst)))
        });
        // The series exists from the start, at 0.
        crate::metrics::process()
            .rate_limited
            .with_label_values(&[name])
            .inc_by(0);
        Self {
            name,
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one from `key`'s allowance: `Err` with how long until the next one when there
    /// is none left.
    pub fn try_take(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(key).map_err(|not_until| {
            crate::metrics::process()
                .rate_limited
                .with_label_values(&[self.name])
                .inc();
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    /// [`Limit::try_take`] as an answer: 429 `rate_limited` with `Retry-After`.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        self.try_take(key).map_err(too_many)
    }
}

/// 429 `rate_limited`, retry after `wait` (at least a second, as `Retry-After` counts).
pub fn too_many(wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = secs.min(f64::from(u32::MAX)) as u32;
    ApiError {
        retry_after: Some(secs),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests: retry in {secs} s"),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits_and_other_keys_are_not_affected() {
        let limit: Limit<u8> = Limit::new("test_burst", 3, Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(limit.try_take(&1), Ok(()));
        }
        let wait = limit.try_take(&1).expect_err("over the burst");
        // One comes back every 20 s.
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(limit.try_take(&2), Ok(()));
        let answer = limit.check(&1).expect_err("still over");
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.code, "rate_limited");
        assert_eq!(answer.retry_after, Some(20));
    }

    #[test]
    fn the_client_ip_is_the_peers_unless_a_proxy_header_is_named() {
        let settings = |header: &str| RateLimitSettings {
            rate_limit_enabled: true,
            rate_login_per_ip_per_minute: 1,
            rate_login_per_username_per_minute: 1,
            rate_register_per_ip_per_hour: 1,
            rate_send_per_user_per_10s: 1,
            rate_upload_per_user_per_minute: 30,
            rate_ws_frames_per_10s: 1,
            rate_client_ip_header: header.to_owned(),
        };
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(settings("").client_ip(&headers, Some(peer)), Some(peer));
        assert_eq!(
            settings("x-forwarded-for").client_ip(&headers, Some(peer)),
            Some("198.51.100.7".parse().unwrap())
        );
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(
            settings("x-forwarded-for").client_ip(&headers, Some(peer)),
            Some(peer)
        );
    }

    #[test]
    fn zero_is_no_limit() {
        let limit: Limit<u8> = Limit::new("test_off", 0, Duration::from_secs(60));
        for _ in 0..10_000 {
            assert_eq!(limit.try_take(&1), Ok(()));
        }
    }
}
