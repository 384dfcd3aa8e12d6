//! A user's avatar (issue #18): the picture the command side stored for them
//! (`avatars/<user_id>/<avatar_id>`, a square PNG or JPEG it rendered itself), as the read
//! models name it now. Any signed-in user may see anyone's, as they may look anyone's name up
//! (`GET /v1/users`). Served like an attachment's thumbnail, so a browser never runs it
//! (`nosniff`, a sandboxing CSP), with `ETag` = the avatar's id (each picture has its own)
//! and `If-None-Match` (304). The URLs the reads give (`avatar_url`) carry the id as `v`,
//! so such a URL always names the same bytes and may be cached for long; without it, or with
//! another picture's id, only briefly.

use super::Query;
use super::consistency::MinPosition;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use blobs::BlobError;
use events::UserId;
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::Deserialize;
use uuid::Uuid;

/// How long a URL naming the current picture (`?v=<avatar_id>`) may be cached.
const CACHE_NAMED: &str = "private, max-age=31536000, immutable";
/// How long any other answer may be: the user may change their picture at any time.
const CACHE_UNNAMED: &str = "private, max-age=60";

/// The SQL of a user's `avatar_url` in the reads, for a row of `rm_users` aliased as the
/// literal given: `/v1/users/<user_id>/avatar?v=<avatar_id>`, NULL when they have none.
macro_rules! avatar_url_sql {
    ($alias:literal) => {
        concat!(
            "CASE WHEN ",
            $alias,
            ".avatar_id IS NULL THEN NULL ELSE '/v1/users/' || ",
            $alias,
            ".user_id || '/avatar?v=' || ",
            $alias,
            ".avatar_id END"
        )
    };
}
pub(crate) use avatar_url_sql;

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
        ("If-None-Match" = Option<String>, Header), ("min_position" = Option<i64>, Query)),
    responses((status = 200, description = "The picture: a square PNG or JPEG of at most 256 px a side"), (status = 304), (status = 401),
        (status = 404, description = "avatar_not_found: no such user, no avatar, or an erased user")))]
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
    let etag = format!("\"{id}\"");
    let named = q.v.as_deref() == Some(id.to_string().as_str());
    let mut res = HeaderMap::new();
    res.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(&e))?,
    );
    res.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if named { CACHE_NAMED } else { CACHE_UNNAMED }),
    );
    res.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, res).into_response());
    }
    let blob = st
        .blobs
        .get(&format!("avatars/{user}/{id}"), None)
        .await
        .map_err(|e| match e {
            // Deleted by the command side just before the read models caught up (a newer
            // picture, a removal or an erasure).
            BlobError::NotFound => not_found(),
            other => ApiError::unavailable_because("blob storage failed", &other),
        })?;
    res.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    res.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    Ok((StatusCode::OK, res, Body::from_stream(blob.stream)).into_response())
}
