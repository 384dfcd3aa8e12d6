//! Who is a server administrator (issue #18): the first user registered, or one named in
//! `APP_ADMIN_USERNAMES`. Each service asks its own tables which user was first.

use crate::error::ApiError;
use axum::http::StatusCode;

/// The usernames of `APP_ADMIN_USERNAMES` (comma-separated; blanks ignored).
pub fn named(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// The answer to anyone else.
pub fn not_an_admin() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_an_admin",
        "only a server administrator may do this",
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_trimmed_and_blanks_ignored() {
        assert_eq!(super::named(" alice, ,bob ,"), ["alice", "bob"]);
        assert!(super::named("").is_empty());
    }
}
