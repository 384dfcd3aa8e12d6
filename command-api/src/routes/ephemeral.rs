//! Typing indicators and ephemeral messages: checked against membership in the
//! log, then broadcast over core NATS. Never stored (docs/architecture.md D7).

use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use events::RoomId;
use events::values::MessageBody;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EphemeralBody {
    /// Up to 4000 characters, not blank.
    pub body: String,
}

/// The core NATS subject carrying a room's ephemeral traffic.
pub fn ephemeral_subject(prefix: &str, room_id: RoomId) -> String {
    format!("{prefix}.ephemeral.room.{room_id}")
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/typing", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)), responses((status = 202), (status = 403, description = "not_a_member"), (status = 404, description = "room_not_found"), (status = 503)))]
pub async fn typing(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
) -> Result<StatusCode, ApiError> {
    broadcast(
        &st,
        room_id,
        me,
        json!({ "type": "typing", "room_id": room_id, "user_id": me }),
    )
    .await
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/ephemeral", request_body = EphemeralBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)), responses((status = 202), (status = 400), (status = 403, description = "not_a_member"), (status = 404, description = "room_not_found"), (status = 429, description = "rate_limited: too many messages from this user (Retry-After)"), (status = 503)))]
pub async fn ephemeral(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    Json(body): Json<EphemeralBody>,
) -> Result<StatusCode, ApiError> {
    st.limits.send.check(&me.0)?;
    let text = MessageBody::parse(&body.body)?;
    broadcast(
        &st,
        room_id,
        me,
        json!({ "type": "ephemeral", "room_id": room_id, "user_id": me, "body": text }),
    )
    .await
}

async fn broadcast(
    st: &AppState,
    room_id: RoomId,
    me: events::UserId,
    frame: serde_json::Value,
) -> Result<StatusCode, ApiError> {
    // The same answer as any command: a private room stays invisible to outsiders.
    st.rooms.require_member(room_id, me).await?;
    let Some(nats) = &st.nats else {
        return Err(ApiError::unavailable("message bus unavailable"));
    };
    let payload = serde_json::to_vec(&frame).map_err(|e| ApiError::internal(&e))?;
    nats.publish(
        ephemeral_subject(&st.settings.service.subject_prefix, room_id),
        payload.into(),
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "ephemeral publish failed");
        ApiError::unavailable("message bus unavailable")
    })?;
    Ok(StatusCode::ACCEPTED)
}
