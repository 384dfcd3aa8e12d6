//! The bans of a room (issue #18), for those who may lift them: the room's owner and admins,
//! and server administrators. A plain member gets 403 `forbidden`; anyone else what any
//! members-only read answers (403 `not_a_member` for a public room, else 404
//! `room_not_found`).

use super::admin::is_admin;
use super::consistency::MinPosition;
use super::rooms::require_member;
use super::{room_not_found, snapshot};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use events::RoomId;
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most bans one answer lists: the newest.
pub const MAX_BANS: i64 = 1000;

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Ban {
    pub user_id: Uuid,
    /// The banned user's username and display name (null for a user not projected yet).
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub banned_by: Uuid,
    pub banned_at: DateTime<Utc>,
    /// The log position of the ban.
    pub position: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Bans {
    /// The bans in force, newest first (at most 1,000).
    pub bans: Vec<Ban>,
}

/// Who is banned from a room. The room's owner and admins, and server administrators.
#[utoipa::path(get, path = "/v1/rooms/{room_id}/bans", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = Bans), (status = 401),
        (status = 403, description = "forbidden (a member who does not moderate), not_a_member (public room)"),
        (status = 404, description = "room_not_found")))]
pub async fn bans(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    _read_after: MinPosition,
) -> Result<Json<Bans>, ApiError> {
    let admin = is_admin(&st, me).await?;
    let mut tx = snapshot(&st.pool).await?;
    if admin {
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM rm_rooms WHERE room_id = $1")
            .bind(room_id.0)
            .fetch_optional(&mut *tx)
            .await?;
        exists.ok_or_else(room_not_found)?;
    } else {
        require_member(&mut *tx, room_id, me).await?;
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM rm_members WHERE room_id = $1 AND user_id = $2")
                .bind(room_id.0)
                .bind(me.0)
                .fetch_optional(&mut *tx)
                .await?;
        if !matches!(role.as_deref(), Some("owner" | "admin")) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only the room owner or an admin may do this",
            ));
        }
    }
    let bans = sqlx::query_as::<_, Ban>(
        "SELECT b.user_id, u.username, u.display_name, b.banned_by, b.banned_at, b.position
           FROM rm_room_bans b
           LEFT JOIN rm_users u ON u.user_id = b.user_id
          WHERE b.room_id = $1
          ORDER BY b.position DESC
          LIMIT $2",
    )
    .bind(room_id.0)
    .bind(MAX_BANS)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Bans { bans }))
}
