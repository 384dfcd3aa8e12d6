//! Server administration commands (issue #18). A server administrator is the first user
//! registered, or one named in `APP_ADMIN_USERNAMES`; anyone else gets 403 `not_an_admin`.
//! Every action is an event in the log, so the log is the audit trail: in a group room,
//! whether a member or not, an administrator changes roles, deletes messages and bans through
//! the room's actor like any room command, with `RoomCommand::AsServerAdmin`, and the events
//! say so (`as_admin`).

use super::bans::ban_reply;
use super::me::{new_user_events, user_state};
use super::rooms::{RoleBody, UserRef};
use super::sessions::{Ending, end_sessions};
use super::{exec, header_idem, require_user};
use crate::error::ApiError;
use crate::extract::{AuthUser, IdempotencyKey, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventlog::{AppendRequest, ExpectedVersion};
use events::room::{AdminCommand, RoomCommand};
use events::user::{self, UserEvent};
use events::{MessageId, RoomId, StoredEvent, UserId};
use serde_json::json;
use uuid::Uuid;

/// Succeeds for a server administrator; 403 `not_an_admin` for anyone else.
pub(crate) async fn require_admin(st: &AppState, user: UserId) -> Result<(), ApiError> {
    let named = http_kit::admin::named(&st.settings.admin_usernames);
    let admin: Option<bool> = sqlx::query_scalar(
        "SELECT c.username = ANY($2)
             OR c.user_id = (SELECT user_id FROM credentials ORDER BY created_at, user_id LIMIT 1)
           FROM credentials c WHERE c.user_id = $1 AND c.deactivated_at IS NULL",
    )
    .bind(user.0)
    .bind(&named)
    .fetch_optional(&st.pool)
    .await?;
    if admin == Some(true) {
        Ok(())
    } else {
        Err(http_kit::admin::not_an_admin())
    }
}

/// Succeeds for a server administrator acting on another user (`target`); 403 `not_an_admin`,
/// or 422 `cannot_target_self` when an administrator would `action` their own account.
pub(crate) async fn require_admin_over(
    st: &AppState,
    me: UserId,
    target: Uuid,
    action: &str,
) -> Result<UserId, ApiError> {
    require_admin(st, me).await?;
    let target = UserId(target);
    if target == me {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot_target_self",
            format!("an administrator cannot {action} their own account here"),
        ));
    }
    Ok(target)
}

#[utoipa::path(post, path = "/v1/admin/users/{user_id}/deactivate", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 200, description = "{user_id, sessions_ended, position}: position is null when it was deactivated already"),
        (status = 401), (status = 403, description = "not_an_admin"), (status = 404, description = "user_not_found"),
        (status = 422, description = "cannot_target_self")))]
pub async fn deactivate(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(target): Path<Uuid>,
) -> Result<Response, ApiError> {
    let target = require_admin_over(&st, me, target, "deactivate").await?;
    let (state, version) = user_state(&st, target).await?;
    if state.registered.is_none() {
        return Err(ApiError::not_found("user_not_found", "no such user"));
    }
    let events = user::deactivate(&state, me);
    // The event, the refusal to sign in and the end of every session commit together.
    let mut tx = eventlog::pool::begin(&st.pool).await?;
    let mut position = None;
    if !events.is_empty() {
        let request = AppendRequest {
            stream_id: target.stream_id(),
            stream_type: UserEvent::STREAM_TYPE.to_owned(),
            expected: ExpectedVersion::Exact(version),
            events: new_user_events(&st, &events, me).await?,
            idempotency: vec![],
        };
        let appended = match st
            .store
            .append_in_tx(&mut tx, std::slice::from_ref(&request))
            .await?
            .into_iter()
            .next()
        {
            Some(Ok(a)) => a,
            Some(Err(eventlog::AppendError::Conflict { .. })) => {
                return Err(ApiError::unavailable(
                    "the account changed meanwhile, retry shortly",
                ));
            }
            Some(Err(e)) => return Err(ApiError::internal(&e)),
            None => return Err(ApiError::internal_message("append returned no result")),
        };
        sqlx::query("UPDATE credentials SET deactivated_at = now() WHERE user_id = $1")
            .bind(target.0)
            .execute(&mut *tx)
            .await?;
        position = Some(appended.last_position);
    }
    let ended = end_sessions(&mut tx, target, Ending::AllBut(None)).await?;
    tx.commit().await?;
    // Refused here at once, elsewhere on the notice (or within 30 s without it).
    st.jwt.revoke_user(target.0);
    if let Some(nats) = &st.nats {
        http_kit::revocation::announce(nats, &st.settings.service.subject_prefix, target.0).await;
    }
    Ok(axum::Json(json!({
        "user_id": target,
        "sessions_ended": ended.len(),
        "position": position,
    }))
    .into_response())
}

/// Runs `cmd` in `room_id` with a server administrator's authority, after checking that `me`
/// is one (and, for a ban, that the user banned is registered).
async fn as_admin(
    st: &AppState,
    me: UserId,
    room_id: RoomId,
    cmd: AdminCommand,
    key: Option<String>,
    render: impl FnOnce(&crate::rooms::Committed) -> (StatusCode, serde_json::Value),
) -> Result<Response, ApiError> {
    require_admin(st, me).await?;
    let command = match &cmd {
        AdminCommand::ChangeRole { .. } => "admin_change_role",
        AdminCommand::DeleteMessage { .. } => "admin_delete_message",
        AdminCommand::Ban { user_id } => {
            require_user(st, *user_id).await?;
            "admin_ban"
        }
        AdminCommand::Unban { .. } => "admin_unban",
    };
    // The command's every field is in its Debug form: one key, one exact request.
    let request = format!("{cmd:?}");
    let idem = header_idem(me, Some(room_id), key, &["admin", &request]);
    exec(
        st,
        command,
        room_id,
        me,
        vec![RoomCommand::AsServerAdmin(cmd)],
        idem,
        render,
    )
    .await
}

#[utoipa::path(put, path = "/v1/admin/rooms/{room_id}/members/{user_id}/role", request_body = RoleBody, security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, description = "{room_id, user_id, role, version, position}: position is null when it was so already"),
        (status = 400, description = "cannot_grant_owner"), (status = 403, description = "not_an_admin, cannot_target_owner"),
        (status = 404, description = "room_not_found, member_not_found"), (status = 409, description = "direct_room"),
        (status = 422, description = "idempotency_key_reused")))]
pub async fn change_role(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, user_id)): Path<(RoomId, UserId)>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<RoleBody>,
) -> Result<Response, ApiError> {
    let role = body.role;
    as_admin(
        &st,
        me,
        room_id,
        AdminCommand::ChangeRole { user_id, role },
        key,
        move |_| {
            (
                StatusCode::OK,
                json!({ "room_id": room_id, "user_id": user_id, "role": role }),
            )
        },
    )
    .await
}

#[utoipa::path(delete, path = "/v1/admin/rooms/{room_id}/messages/{message_id}", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, description = "{message_id, version, position}"), (status = 403, description = "not_an_admin"),
        (status = 404, description = "room_not_found, message_not_found"), (status = 409, description = "message_deleted, direct_room"),
        (status = 422, description = "idempotency_key_reused")))]
pub async fn delete_message(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, message_id)): Path<(RoomId, MessageId)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    as_admin(
        &st,
        me,
        room_id,
        AdminCommand::DeleteMessage { message_id },
        key,
        move |_| (StatusCode::OK, json!({ "message_id": message_id })),
    )
    .await
}

#[utoipa::path(post, path = "/v1/admin/rooms/{room_id}/bans", request_body = UserRef, security(("bearer" = [])),
    params(("room_id" = Uuid, Path)),
    responses((status = 200, description = "{room_id, user_id, version, position}: position is null when they were banned already"),
        (status = 403, description = "not_an_admin, cannot_target_owner"), (status = 404, description = "room_not_found, user_not_found"),
        (status = 409, description = "direct_room"), (status = 422, description = "cannot_target_self, idempotency_key_reused")))]
pub async fn ban(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    IdempotencyKey(key): IdempotencyKey,
    Json(body): Json<UserRef>,
) -> Result<Response, ApiError> {
    let user_id = UserId(body.user_id);
    as_admin(
        &st,
        me,
        room_id,
        AdminCommand::Ban { user_id },
        key,
        move |_| ban_reply(room_id, user_id),
    )
    .await
}

#[utoipa::path(delete, path = "/v1/admin/rooms/{room_id}/bans/{user_id}", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, description = "{room_id, user_id, version, position}: position is null when they were not banned"),
        (status = 403, description = "not_an_admin"), (status = 404, description = "room_not_found"),
        (status = 409, description = "direct_room"), (status = 422, description = "idempotency_key_reused")))]
pub async fn unban(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path((room_id, user_id)): Path<(RoomId, UserId)>,
    IdempotencyKey(key): IdempotencyKey,
) -> Result<Response, ApiError> {
    as_admin(
        &st,
        me,
        room_id,
        AdminCommand::Unban { user_id },
        key,
        move |_| ban_reply(room_id, user_id),
    )
    .await
}
