//! Looking a user up by username (to invite them or open a direct room); their avatar is
//! `avatars.rs`.

use super::Query;
use super::avatars::avatar_url;
use super::consistency::MinPosition;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize)]
pub struct UserQuery {
    pub username: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserSummary {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    /// Where the user's avatar is served (`GET /v1/users/{user_id}/avatar?v=<avatar_id>`);
    /// null when they have none.
    pub avatar_url: Option<String>,
}

/// A user's row as [`UserSummary`] reads it.
#[derive(sqlx::FromRow)]
struct UserRow {
    user_id: Uuid,
    username: String,
    display_name: String,
    avatar_id: Option<Uuid>,
}

impl From<UserRow> for UserSummary {
    fn from(r: UserRow) -> Self {
        UserSummary {
            user_id: r.user_id,
            username: r.username,
            display_name: r.display_name,
            avatar_url: avatar_url(r.user_id, r.avatar_id),
        }
    }
}

/// `username` as [`lookup`] takes it: 1–64 characters after trimming (a username that
/// cannot exist is a 404, not a 400).
pub const USERNAME_RULE: events::values::TextRule = events::values::TextRule {
    min_chars: 1,
    max_chars: 64,
    pattern: Some(events::values::NOT_BLANK),
};

/// Exact-match lookup by username (usernames are lower case; the query is
/// compared in lower case). Any signed-in user may look anyone up: usernames are
/// public handles, and registration already reveals whether one is taken.
#[utoipa::path(get, path = "/v1/users", security(("bearer" = [])),
    params(("username" = String, Query), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = UserSummary), (status = 400), (status = 401), (status = 404, description = "user_not_found")))]
pub async fn lookup(
    State(st): State<AppState>,
    AuthUser(_caller): AuthUser,
    _read_after: MinPosition,
    Query(q): Query<UserQuery>,
) -> Result<Json<UserSummary>, ApiError> {
    let username = q
        .username
        .map(|u| u.trim().to_lowercase())
        .filter(|u| {
            (USERNAME_RULE.min_chars..=USERNAME_RULE.max_chars).contains(&u.chars().count())
        })
        .ok_or_else(|| {
            ApiError::bad_request("invalid_query", "username is required (1-64 characters)")
        })?;
    sqlx::query_as::<_, UserRow>(
        "SELECT user_id, username, display_name, avatar_id FROM rm_users WHERE username = $1",
    )
    .bind(&username)
    .fetch_optional(&st.pool)
    .await?
    .map(|r| Json(r.into()))
    .ok_or_else(|| ApiError::not_found("user_not_found", "no such user"))
}
