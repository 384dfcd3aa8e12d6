//! How every role connects to NATS: one set of options, so a restart of NATS is survived
//! the same way everywhere.

use std::time::Duration;

use percent_encoding::percent_decode_str;

/// The longest wait between two reconnection attempts.
///
/// async-nats' default doubles the wait after each failed attempt up to 4 s, so a role could
/// reconnect up to 4 s after NATS was back: the chaos battery (R3) measured the read
/// models and the live feed converging 3.9–4.6 s after a 2 s outage. Attempting twice a
/// second costs nothing on loopback or in a data centre.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The wait before reconnection attempt `attempts` (1-based): none for the first, then
/// doubling from 8 ms up to [`MAX_RECONNECT_DELAY`].
pub fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = u32::try_from(attempts.saturating_add(1))
        .unwrap_or(u32::MAX)
        .min(16);
    Duration::from_millis(2u64.saturating_pow(exp)).min(MAX_RECONNECT_DELAY)
}

/// Connects to `url`, retrying the first connection as later ones (a role may start
/// before NATS does), as the user it names ([`options`]).
pub async fn connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    options(url)
        .retry_on_initial_connect()
        .reconnect_delay_callback(reconnect_delay)
        .connect(url)
        .await
}

/// Options that log in as the URL says: `nats://user:password@host` with that user and
/// password, `nats://token@host` with that token (percent-encoded characters decoded).
///
/// async-nats takes the server from a URL but ignores the credentials in it, so without
/// this a role given `APP_NATS_URL=nats://projector:…@nats:4222` connected as nobody and
/// was refused by a server with users (`deploy/nats/nats.conf`).
pub fn options(url: &str) -> async_nats::ConnectOptions {
    let Ok(server) = url.trim().parse::<async_nats::ServerAddr>() else {
        return async_nats::ConnectOptions::new();
    };
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    match (server.username(), server.password()) {
        (Some(user), Some(password)) => {
            async_nats::ConnectOptions::with_user_and_password(decode(user), decode(password))
        }
        (Some(token), None) => async_nats::ConnectOptions::with_token(decode(token)),
        _ => async_nats::ConnectOptions::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnection_waits_grow_and_are_capped() {
        assert_eq!(reconnect_delay(0), Duration::ZERO);
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(8));
        assert_eq!(reconnect_delay(3), Duration::from_millis(16));
        assert_eq!(reconnect_delay(8), Duration::from_millis(500));
        assert_eq!(reconnect_delay(usize::MAX), MAX_RECONNECT_DELAY);
    }
}
