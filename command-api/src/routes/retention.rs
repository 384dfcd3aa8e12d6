//! How long a room keeps its messages (issue #18): its own period, set by its owner or admins;
//! without one, the server's default (`APP_RETENTION_DAYS`). The retention job
//! ([`crate::retention`]) expires what is older.

use super::exec;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use events::RoomId;
use events::retention::RetentionDays;
use events::room::RoomCommand;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Days the room keeps a message: 1 to 36500. `null`: the server's default.
    #[schema(minimum = 1, maximum = 36500)]
    pub days: Option<u32>,
}

#[utoipa::path(put, path = "/v1/rooms/{room_id}/retention", request_body = RetentionBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)),
    responses((status = 200, description = "{room_id, days}"), (status = 400, description = "invalid_retention"),
        (status = 403, description = "forbidden (not an owner or admin), not_a_member"), (status = 404, description = "room_not_found"),
        (status = 409, description = "direct_room: a direct room keeps the server's default")))]
pub async fn set_retention(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    Json(body): Json<RetentionBody>,
) -> Result<Response, ApiError> {
    let days = body.days.map(RetentionDays::parse).transpose()?;
    exec(
        &st,
        "set_retention",
        room_id,
        me,
        vec![RoomCommand::ChangeRetention { days }],
        None,
        move |_| {
            (
                StatusCode::OK,
                json!({ "room_id": room_id, "days": days.map(RetentionDays::get) }),
            )
        },
    )
    .await
}
