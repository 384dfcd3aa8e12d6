//! Bans from a group room (issue #18): the room's owner or an admin bans a user (a member is
//! removed as by a kick; anyone else is kept out before they come), who then cannot join or be
//! invited until unbanned. Who may ban whom is the domain's rule (`events::room`, as for a
//! kick); a server administrator does the same through `routes::admin`.

use super::rooms::UserRef;
use super::{exec, header_idem, require_user};
use crate::error::ApiError;
use crate::extract::{AuthUser, IdempotencyKey, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use events::room::RoomCommand;
use events::{RoomId, UserId};
use serde_json::json;

#[utoipa::path(post, path = "/v1/rooms/{room_id}/bans", request_body = UserRef, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)),
    responses((status = 200, description = "{room_id, user_id, version, position}: position is null when they were banned already"),
        (status = 403, description = "forbidden, cannot_target_owner, not_a_member"),
        (status = 404, description = "room_not_found, user_not_found"), (status = 409, description = "direct_room"),
        (status = 422, description = "cannot_target_self, idempotency_key_reused")))]
pub async fn ban(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<UserRef>,
) -> Result<Response, ApiError> {
    let user_id = UserId(body.user_id);
    require_user(&st, user_id).await?;
    let idem = header_idem(
        me,
        Some(room_id),
        key,
        &["ban", &room_id.to_string(), &user_id.to_string()],
    );
    exec(
        &st,
        "ban",
        room_id,
        me,
        vec![RoomCommand::Ban { user_id }],
        idem,
        move |_| ban_reply(room_id, user_id),
    )
    .await
}

#[utoipa::path(delete, path = "/v1/rooms/{room_id}/bans/{user_id}", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path), ("user_id" = uuid::Uuid, Path)),
    responses((status = 200, description = "{room_id, user_id, version, position}: position is null when they were not banned"),
        (status = 403, description = "forbidden, not_a_member"), (status = 404, description = "room_not_found"),
        (status = 409, description = "direct_room"), (status = 422, description = "idempotency_key_reused")))]
pub async fn unban(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, user_id)): Path<(RoomId, UserId)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let idem = header_idem(
        me,
        Some(room_id),
        key,
        &["unban", &room_id.to_string(), &user_id.to_string()],
    );
    exec(
        &st,
        "unban",
        room_id,
        me,
        vec![RoomCommand::Unban { user_id }],
        idem,
        move |_| ban_reply(room_id, user_id),
    )
    .await
}

/// The answer to a ban or an unban (`version` and `position` are added by [`exec`]).
pub(crate) fn ban_reply(room_id: RoomId, user_id: UserId) -> (StatusCode, serde_json::Value) {
    (
        StatusCode::OK,
        json!({ "room_id": room_id, "user_id": user_id }),
    )
}
