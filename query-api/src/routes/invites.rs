//! The caller's pending invitations to private rooms: accepted by joining the room
//! (`POST /v1/rooms/{room_id}/join`), which only an invited user may do.

use super::consistency::MinPosition;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A room the caller is invited to and has not joined.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Invite {
    pub room_id: Uuid,
    pub name: String,
    pub topic: String,
    /// `public` or `private`.
    pub visibility: String,
    pub member_count: i32,
}

#[derive(Serialize, ToSchema)]
pub struct Invites {
    pub invites: Vec<Invite>,
}

/// At most this many invitations are listed (by room name): an invitation is
/// one room someone chose to add the caller to, so hundreds pending is abuse.
pub const MAX_INVITES: i64 = 200;

/// The caller's pending invitations, by room name.
#[utoipa::path(get, path = "/v1/invites", security(("bearer" = [])),
    params(("min_position" = Option<i64>, Query)),
    responses((status = 200, body = Invites), (status = 401)))]
pub async fn my_invites(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    _read_after: MinPosition,
) -> Result<Json<Invites>, ApiError> {
    let invites = sqlx::query_as::<_, Invite>(
        "SELECT r.room_id, r.name, r.topic, r.visibility, r.member_count
           FROM rm_members m
           JOIN rm_rooms r ON r.room_id = m.room_id
          WHERE m.user_id = $1 AND m.status = 'invited'
          ORDER BY lower(r.name), r.room_id
          LIMIT $2",
    )
    .bind(me.0)
    .bind(MAX_INVITES)
    .fetch_all(&st.pool)
    .await?;
    Ok(Json(Invites { invites }))
}
