//! Room lifecycle and membership commands.

use super::{created_if, exec, header_idem, require_user};
use crate::error::ApiError;
use crate::extract::{AuthUser, IdempotencyKey, Json, Path};
use crate::rooms::Committed;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use events::room::{RoomCommand, RoomEvent};
use events::values::{Role, RoomName, Topic, Visibility};
use events::{RoomId, UserId};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomBody {
    /// 1–80 characters.
    pub name: String,
    /// Up to 1024 characters.
    pub topic: Option<String>,
    #[schema(value_type = String, example = "public")]
    pub visibility: Visibility,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoomBody {
    pub name: Option<String>,
    pub topic: Option<String>,
    #[schema(value_type = Option<String>)]
    pub visibility: Option<Visibility>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    pub user_id: uuid::Uuid,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    /// `member` or `admin`.
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
}

fn room_reply(room_id: RoomId) -> impl FnOnce(&Committed) -> (StatusCode, serde_json::Value) {
    move |_| (StatusCode::OK, json!({ "room_id": room_id }))
}

#[utoipa::path(post, path = "/v1/rooms", request_body = CreateRoomBody, security(("bearer" = [])),
    responses((status = 201, description = "{room_id, position, version}"), (status = 400), (status = 401), (status = 422, description = "idempotency_key_reused")))]
pub async fn create_room(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<CreateRoomBody>,
) -> Result<Response, ApiError> {
    let name = RoomName::parse(&body.name)?;
    let topic = Topic::parse(body.topic.as_deref().unwrap_or(""))?;
    let room_id = RoomId::new();
    let vis = format!("{:?}", body.visibility);
    let idem = header_idem(
        me,
        None,
        key,
        &["POST /v1/rooms", name.as_str(), topic.as_str(), &vis],
    );
    let cmd = RoomCommand::Create {
        room_id,
        name,
        topic,
        visibility: body.visibility,
    };
    exec(
        &st,
        "create_room",
        room_id,
        me,
        vec![cmd],
        idem,
        // A retry answers with the room its first attempt created.
        |d| (StatusCode::CREATED, json!({ "room_id": d.room_id })),
    )
    .await
}

#[utoipa::path(patch, path = "/v1/rooms/{room_id}", request_body = UpdateRoomBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)), responses((status = 200), (status = 400, description = "invalid_body: none of name, topic, visibility"),
        (status = 403, description = "forbidden, not_a_member"), (status = 404, description = "room_not_found"), (status = 409, description = "direct_room"), (status = 422, description = "idempotency_key_reused")))]
pub async fn update_room(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<UpdateRoomBody>,
) -> Result<Response, ApiError> {
    let mut cmds = Vec::new();
    let mut fp = vec![format!("PATCH /v1/rooms/{room_id}")];
    if let Some(n) = &body.name {
        let name = RoomName::parse(n)?;
        fp.push(format!("name={name}"));
        cmds.push(RoomCommand::Rename { name });
    }
    if let Some(t) = &body.topic {
        let topic = Topic::parse(t)?;
        fp.push(format!("topic={topic}"));
        cmds.push(RoomCommand::ChangeTopic { topic });
    }
    if let Some(visibility) = body.visibility {
        fp.push(format!("visibility={visibility:?}"));
        cmds.push(RoomCommand::ChangeVisibility { visibility });
    }
    if cmds.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "give at least one of name, topic, visibility",
        ));
    }
    let fp: Vec<&str> = fp.iter().map(String::as_str).collect();
    let idem = header_idem(me, Some(room_id), key, &fp);
    exec(
        &st,
        "update_room",
        room_id,
        me,
        cmds,
        idem,
        room_reply(room_id),
    )
    .await
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/join", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)), responses((status = 200), (status = 403, description = "banned"), (status = 404, description = "room_not_found"), (status = 409, description = "already_member, direct_room"), (status = 422, description = "idempotency_key_reused")))]
pub async fn join(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let idem = header_idem(me, Some(room_id), key, &["join", &room_id.to_string()]);
    exec(
        &st,
        "join",
        room_id,
        me,
        vec![RoomCommand::Join],
        idem,
        room_reply(room_id),
    )
    .await
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/leave", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)), responses((status = 200), (status = 403, description = "not_a_member"), (status = 404, description = "room_not_found"),
        (status = 409, description = "owner_cannot_leave, direct_room"), (status = 422, description = "idempotency_key_reused")))]
pub async fn leave(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let idem = header_idem(me, Some(room_id), key, &["leave", &room_id.to_string()]);
    exec(
        &st,
        "leave",
        room_id,
        me,
        vec![RoomCommand::Leave],
        idem,
        room_reply(room_id),
    )
    .await
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/invites", request_body = UserRef, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path)), responses((status = 200), (status = 403, description = "forbidden, not_a_member"), (status = 404, description = "room_not_found, user_not_found"),
        (status = 409, description = "already_member, already_invited, user_banned, direct_room"), (status = 422, description = "idempotency_key_reused")))]
pub async fn invite(
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
        &["invite", &room_id.to_string(), &user_id.to_string()],
    );
    exec(
        &st,
        "invite",
        room_id,
        me,
        vec![RoomCommand::Invite { user_id }],
        idem,
        move |_| {
            (
                StatusCode::OK,
                json!({ "room_id": room_id, "user_id": user_id }),
            )
        },
    )
    .await
}

#[utoipa::path(delete, path = "/v1/rooms/{room_id}/members/{user_id}", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path), ("user_id" = uuid::Uuid, Path)),
    responses((status = 200), (status = 403, description = "forbidden, cannot_target_owner, not_a_member"), (status = 404, description = "room_not_found, member_not_found"),
        (status = 409, description = "direct_room"), (status = 422, description = "cannot_target_self, idempotency_key_reused")))]
pub async fn kick(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, user_id)): Path<(RoomId, UserId)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    let idem = header_idem(
        me,
        Some(room_id),
        key,
        &["kick", &room_id.to_string(), &user_id.to_string()],
    );
    exec(
        &st,
        "kick",
        room_id,
        me,
        vec![RoomCommand::Kick { user_id }],
        idem,
        move |_| {
            (
                StatusCode::OK,
                json!({ "room_id": room_id, "user_id": user_id }),
            )
        },
    )
    .await
}

#[utoipa::path(put, path = "/v1/rooms/{room_id}/members/{user_id}/role", request_body = RoleBody, security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path), ("user_id" = uuid::Uuid, Path)),
    responses((status = 200), (status = 400, description = "cannot_grant_owner"), (status = 403, description = "forbidden, cannot_target_owner, not_a_member"),
        (status = 404, description = "room_not_found, member_not_found"), (status = 409, description = "direct_room"),
        (status = 422, description = "cannot_target_self, idempotency_key_reused")))]
pub async fn change_role(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, user_id)): Path<(RoomId, UserId)>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<RoleBody>,
) -> Result<Response, ApiError> {
    let role = body.role;
    let idem = header_idem(
        me,
        Some(room_id),
        key,
        &[
            "role",
            &room_id.to_string(),
            &user_id.to_string(),
            &format!("{role:?}"),
        ],
    );
    exec(
        &st,
        "change_role",
        room_id,
        me,
        vec![RoomCommand::ChangeRole { user_id, role }],
        idem,
        move |_| {
            (
                StatusCode::OK,
                json!({ "room_id": room_id, "user_id": user_id, "role": role }),
            )
        },
    )
    .await
}

#[utoipa::path(post, path = "/v1/direct", request_body = UserRef, security(("bearer" = [])),
    responses((status = 201, description = "opened"), (status = 200, description = "already open"), (status = 404, description = "user_not_found"),
        (status = 422, description = "direct_with_self")))]
pub async fn open_direct(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Json(body): Json<UserRef>,
) -> Result<Response, ApiError> {
    let with = UserId(body.user_id);
    if with == me {
        return Err(events::room::RoomError::DirectWithSelf.into());
    }
    require_user(&st, with).await?;
    // One room per pair: its id is derived from the pair, so opening is idempotent.
    let room_id = RoomId::direct(me, with);
    exec(
        &st,
        "open_direct",
        room_id,
        me,
        vec![RoomCommand::OpenDirect { room_id, with }],
        None,
        move |d| {
            let opened = d
                .events
                .iter()
                .any(|e| matches!(e, RoomEvent::DirectRoomOpened { .. }));
            (created_if(opened), json!({ "room_id": room_id }))
        },
    )
    .await
}
