//! Read receipts: how far each member of a room has read, as shown to the room (who has seen
//! a message). Live changes arrive as `read_marker_moved` frames.
//!
//! A member who keeps receipts private (`PUT /v1/me/read-receipts`) is never listed, and their
//! markers reach only their own sockets: their receipts moved while private are never shown,
//! and those from before are hidden for as long as they keep them private.

use super::consistency::MinPosition;
use super::rooms::require_member;
use super::snapshot;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use events::RoomId;
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most receipts one answer lists: those furthest read.
pub const MAX_RECEIPTS: i64 = 1000;

#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Receipt {
    pub user_id: Uuid,
    /// The member has read every message up to this `seq`.
    pub seq: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Receipts {
    /// Joined members with a receipt to show, furthest read first (at most 1,000).
    pub receipts: Vec<Receipt>,
}

/// How far the room's members have read. Members only.
#[utoipa::path(get, path = "/v1/rooms/{room_id}/receipts", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = Receipts), (status = 401),
        (status = 403, description = "not_a_member (public room)"), (status = 404, description = "room_not_found")))]
pub async fn receipts(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    _read_after: MinPosition,
) -> Result<Json<Receipts>, ApiError> {
    let mut tx = snapshot(&st.pool).await?;
    require_member(&mut *tx, room_id, me).await?;
    let receipts = sqlx::query_as::<_, Receipt>(
        "SELECT rc.user_id, rc.seq
           FROM rm_receipts rc
           JOIN rm_members m ON m.room_id = rc.room_id AND m.user_id = rc.user_id
          WHERE rc.room_id = $1 AND m.status = 'joined'
            AND NOT EXISTS (SELECT 1 FROM rm_private_receipts p WHERE p.user_id = rc.user_id)
          ORDER BY rc.seq DESC, rc.user_id
          LIMIT $2",
    )
    .bind(room_id.0)
    .bind(MAX_RECEIPTS)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Receipts { receipts }))
}
