//! Server administration commands (issue #18). A server administrator is the first user
//! registered, or one named in `APP_ADMIN_USERNAMES`; anyone else gets 403 `not_an_admin`.
//! Every action is an event in the log, so the log is the audit trail.

use super::me::{new_user_events, user_state};
use super::sessions::{Ending, end_sessions};
use crate::error::ApiError;
use crate::extract::{AuthUser, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventlog::{AppendRequest, ExpectedVersion};
use events::user::{self, UserEvent};
use events::{StoredEvent, UserId};
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
