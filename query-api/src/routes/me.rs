//! The caller's own profile.

use super::avatars::avatar_url;
use super::consistency::MinPosition;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    /// Where your avatar is served (`GET /v1/users/{user_id}/avatar?v=<avatar_id>`); null
    /// when you have none.
    pub avatar_url: Option<String>,
    /// Read receipts kept private (`PUT /v1/me/read-receipts`).
    pub private_receipts: bool,
}

/// The caller's row as [`Me`] reads it.
#[derive(sqlx::FromRow)]
struct MeRow {
    id: Uuid,
    username: String,
    display_name: String,
    avatar_id: Option<Uuid>,
    private_receipts: bool,
}

impl From<MeRow> for Me {
    fn from(r: MeRow) -> Self {
        Me {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            avatar_url: avatar_url(r.id, r.avatar_id),
            private_receipts: r.private_receipts,
        }
    }
}

/// The caller's profile. 404 `user_not_found` until the registration is projected
/// (pass the registration's `position` as `min_position` to wait for it).
#[utoipa::path(get, path = "/v1/me", security(("bearer" = [])),
    params(("min_position" = Option<i64>, Query, description = "wait until the read models reach this log position")),
    responses((status = 200, body = Me), (status = 401), (status = 404), (status = 503, description = "not_caught_up")))]
pub async fn me(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    _read_after: MinPosition,
) -> Result<Json<Me>, ApiError> {
    sqlx::query_as::<_, MeRow>(
        "SELECT user_id AS id, username, display_name, avatar_id, \
         EXISTS (SELECT 1 FROM rm_private_receipts p WHERE p.user_id = $1) AS private_receipts \
         FROM rm_users WHERE user_id = $1",
    )
    .bind(me.0)
    .fetch_optional(&st.pool)
    .await?
    .map(|r| Json(r.into()))
    .ok_or_else(|| ApiError::not_found("user_not_found", "no such user"))
}
