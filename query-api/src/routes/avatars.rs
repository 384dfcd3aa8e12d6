//! A user's avatar (issue #18): the picture the command side stored for them
//! (`avatars/<user_id>/<avatar_id>`, a square PNG or JPEG it rendered itself), as the read
//! models name it now. Any signed-in user may see anyone's, as they may look anyone's name up
//! (`GET /v1/users`). Served as an attachment is (`blob_response`), so a browser never runs
//! it (`nosniff`, a sandboxing CSP), with `ETag` = the avatar's id (each picture has its own),
//! `If-None-Match` (304) and byte ranges (`Range`, 206). The URLs the reads give (`avatar_url`) carry the id as `v`,
//! so such a URL always names the same bytes and may be cached for long; without it, or with
//! another picture's id, only briefly.

use super::Query;
use super::blob_response::BlobResponse;
use super::consistency::MinPosition;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use events::{AvatarId, UserId};
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::Deserialize;
use uuid::Uuid;

/// How long a URL naming the current picture (`?v=<avatar_id>`) may be cached.
const CACHE_NAMED: &str = "private, max-age=31536000, immutable";
/// How long any other answer may be: the user may change their picture at any time.
const CACHE_UNNAMED: &str = "private, max-age=60";

/// A user's `avatar_url` in the reads, from their `rm_users` row's `user_id` and `avatar_id`:
/// `None` when they have none.
pub(crate) fn avatar_url(user_id: Uuid, avatar_id: Option<Uuid>) -> Option<String> {
    avatar_id.map(|id| events::avatar::url(UserId(user_id), AvatarId(id)))
}

#[derive(Deserialize)]
pub struct AvatarQuery {
    /// The avatar's id, as `avatar_url` gives it; only decides how long the answer may be
    /// cached.
    pub v: Option<String>,
}

fn not_found() -> ApiError {
    ApiError::not_found("avatar_not_found", "this user has no avatar")
}

#[utoipa::path(get, path = "/v1/users/{user_id}/avatar", security(("bearer" = [])),
    params(("user_id" = Uuid, Path), ("v" = Option<String>, Query, description = "The avatar's id, as `avatar_url` gives it: the answer may then be cached for long."),
        ("Range" = Option<String>, Header, description = "One byte range: `bytes=0-99`, `bytes=100-`, `bytes=-100`."),
        ("If-None-Match" = Option<String>, Header), ("min_position" = Option<i64>, Query)),
    responses((status = 200, description = "The picture: a square PNG or JPEG of at most 256 px a side"), (status = 206, description = "The range asked for"),
        (status = 304), (status = 401),
        (status = 404, description = "avatar_not_found: no such user, no avatar, or an erased user"),
        (status = 416, description = "range_not_satisfiable")))]
pub async fn avatar(
    State(st): State<AppState>,
    AuthUser(_caller): AuthUser,
    Path(user): Path<UserId>,
    Query(q): Query<AvatarQuery>,
    headers: HeaderMap,
    _read_after: MinPosition,
) -> Result<Response, ApiError> {
    let row: Option<(Option<Uuid>, Option<String>)> =
        sqlx::query_as("SELECT avatar_id, avatar_content_type FROM rm_users WHERE user_id = $1")
            .bind(user.0)
            .fetch_optional(&st.pool)
            .await?;
    let Some((Some(id), Some(content_type))) = row else {
        return Err(not_found());
    };
    let named = q.v.as_deref() == Some(id.to_string().as_str());
    BlobResponse {
        key: &events::avatar::blob_key(user, AvatarId(id)),
        content_type: Some(&content_type),
        tag: &id.to_string(),
        cache_control: if named { CACHE_NAMED } else { CACHE_UNNAMED },
        disposition: None,
        // The blob deleted by the command side just before the read models caught up (a
        // newer picture, a removal or an erasure).
        not_found,
    }
    .serve(&st, &headers)
    .await
}
