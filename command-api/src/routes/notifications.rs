//! A member's notification level in a room: when their live feed tells them of the room's
//! messages while they are not looking at it.

use super::exec;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use events::RoomId;
use events::room::RoomCommand;
use events::values::NotificationLevel;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationLevelBody {
    /// `all`: every message; `mentions`: messages that mention you, and every message of a
    /// direct room (the default); `none`: nothing.
    #[schema(value_type = String)]
    pub level: NotificationLevel,
}

#[utoipa::path(put, path = "/v1/rooms/{room_id}/notifications", request_body = NotificationLevelBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)),
    responses((status = 200, description = "{room_id, level}"), (status = 403, description = "not_a_member"), (status = 404, description = "room_not_found")))]
pub async fn set_notification_level(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    Json(body): Json<NotificationLevelBody>,
) -> Result<Response, ApiError> {
    let level = body.level;
    exec(
        &st,
        "set_notification_level",
        room_id,
        me,
        vec![RoomCommand::SetNotificationLevel { level }],
        None,
        move |_| {
            (
                StatusCode::OK,
                json!({ "room_id": room_id, "level": level.as_str() }),
            )
        },
    )
    .await
}
