//! Secrets in settings: values that must never reach a log line or a `Debug` dump.
//!
//! - [`SecretString`] (from the `secrecy` crate) for a value that is secret as a whole,
//!   such as the JWT secret: `Debug` shows `[REDACTED]`, and the memory is zeroed on drop.
//! - [`SecretUrl`] for a connection URL that may carry a password: `Debug` shows the URL
//!   with the password replaced by `***`, so the host and database stay visible in logs.
//!
//! Both give their value only through [`ExposeSecret::expose_secret`], which makes each
//! use easy to find.

use std::fmt;

pub use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// A URL that may carry a password (`postgres://user:password@host/db`, or
/// `?password=` in the query string).
#[derive(Clone, Default)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// The URL as it is, password included: for connecting, never for logging.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with any password replaced by `***`: safe to log.
    pub fn redacted(&self) -> String {
        redact_url(self.expose_secret())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl PartialEq for SecretUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret() == other.expose_secret()
    }
}

impl Eq for SecretUrl {}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl<'de> Deserialize<'de> for SecretUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Hides the passwords of a URL: the one in the user-info part
/// (`postgres://user:secret@host` → `postgres://user:***@host`) and any `password=`
/// query parameter (`?password=secret` → `?password=***`).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if s + 3 < at && base[s + 3..at].contains(':') => {
            let colon = s + 3 + base[s + 3..at].find(':').unwrap_or(0);
            format!("{}:***{}", &base[..colon], &base[at..])
        }
        _ => base.to_owned(),
    };
    match query {
        None => base,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=secret"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn debug_shows_the_url_without_its_password() {
        let url = SecretUrl::from("postgres://chat:hunter2@db:5432/chat");
        let shown = format!("{url:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db:5432/chat"), "{shown}");
        assert_eq!(url.expose_secret(), "postgres://chat:hunter2@db:5432/chat");
    }
}
