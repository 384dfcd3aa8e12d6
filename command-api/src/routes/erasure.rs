//! "Erase me", by the user or a server administrator (issue #18, ADR 23): the account's data
//! keys are shredded in the transaction that appends its `UserErased`, so every personal value
//! it owns in the log (sealed under those keys) reads as erased everywhere from then on, a
//! rebuild included. The log is not rewritten; other users' messages are untouched.

use super::admin::{require_admin, require_admin_over};
use super::me::{new_user_events, user_state};
use super::require_user;
use super::sessions::{Ending, end_sessions};
use crate::attachments::Attachments;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eventlog::{AppendError, AppendRequest, ExpectedVersion};
use events::user::{self, UserEvent, UserState};
use events::{StoredEvent, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Attempts at an erasure that lost a race with another change of the same user.
const ATTEMPTS: u32 = 3;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseMeBody {
    /// Your own username, typed again: erasing cannot be undone.
    pub confirm_username: String,
}

#[derive(Serialize, ToSchema)]
pub struct Erasure {
    pub user_id: Uuid,
    /// Data keys shredded (0 when the account was erased already).
    pub keys_shredded: u64,
    pub sessions_ended: usize,
    /// The log position of the `UserErased` event; null when it was erased already.
    pub position: Option<i64>,
}

#[utoipa::path(post, path = "/v1/me/erase", request_body = EraseMeBody, security(("bearer" = [])),
    responses((status = 200, body = Erasure), (status = 401),
        (status = 422, description = "confirmation_mismatch: the username typed is not yours")))]
pub async fn erase_me(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Json(body): Json<EraseMeBody>,
) -> Result<Response, ApiError> {
    let read = user_state(&st, me).await?;
    let mine = read.0.registered.as_ref().map(|(_, u)| u.as_str());
    if mine != Some(body.confirm_username.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirmation_mismatch",
            "confirm_username must be your own username",
        ));
    }
    Ok(axum::Json(erase(&st, me, me, Some(read)).await?).into_response())
}

#[utoipa::path(post, path = "/v1/admin/users/{user_id}/erase", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 200, body = Erasure), (status = 401),
        (status = 403, description = "not_an_admin"), (status = 404, description = "user_not_found"),
        (status = 422, description = "cannot_target_self: erase yourself with POST /v1/me/erase")))]
pub async fn erase_user(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(target): Path<Uuid>,
) -> Result<Response, ApiError> {
    // Oneself: `POST /v1/me/erase`, which asks for the username again.
    let target = require_admin_over(&st, me, target, "erase").await?;
    Ok(axum::Json(erase(&st, target, me, None).await?).into_response())
}

/// Erases `target` (decided by `by`). In one transaction: the `UserDeactivated` (unless it
/// was) and `UserErased` events, the keys shredded, the credentials left without a name, the
/// sign-in links and sessions ended, the uploads' names erased. Then the uploads' bytes and
/// every avatar blob of the user are deleted and every replica told. `read`: the target's
/// state and version as the caller just read them, for the first attempt.
async fn erase(
    st: &AppState,
    target: UserId,
    by: UserId,
    mut read: Option<(UserState, i64)>,
) -> Result<Erasure, ApiError> {
    for _ in 0..ATTEMPTS {
        let (state, version) = match read.take() {
            Some(read) => read,
            None => user_state(st, target).await?,
        };
        if state.registered.is_none() {
            return Err(ApiError::not_found("user_not_found", "no such user"));
        }
        let events = user::erase(&state, by);
        if events.is_empty() {
            return Ok(Erasure {
                user_id: target.0,
                keys_shredded: 0,
                sessions_ended: 0,
                position: None,
            });
        }
        let request = AppendRequest {
            stream_id: target.stream_id(),
            stream_type: UserEvent::STREAM_TYPE.to_owned(),
            expected: ExpectedVersion::Exact(version),
            events: new_user_events(st, &events, by).await?,
            idempotency: vec![],
        };
        let mut tx = eventlog::pool::begin(&st.pool).await?;
        let appended = match st
            .store
            .append_in_tx(&mut tx, std::slice::from_ref(&request))
            .await?
            .into_iter()
            .next()
        {
            Some(Ok(a)) => a,
            Some(Err(AppendError::Conflict { .. })) => continue,
            Some(Err(e)) => return Err(ApiError::internal(&e)),
            None => return Err(ApiError::internal_message("append returned no result")),
        };
        let keys_shredded = vault::Keyring::shred(&mut tx, target.0, by.0).await?;
        sqlx::query(
            "UPDATE credentials SET deactivated_at = COALESCE(deactivated_at, now()), username = $2
             WHERE user_id = $1",
        )
        .bind(target.0)
        .bind(vault::erased_username(target.0))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM oidc_identities WHERE user_id = $1")
            .bind(target.0)
            .execute(&mut *tx)
            .await?;
        let uploads = Attachments::erase_names(&mut tx, target.0).await?;
        let ended = end_sessions(&mut tx, target, Ending::AllBut(None)).await?;
        tx.commit().await?;
        st.keyring.forget(target.0);
        st.jwt.revoke_user(target.0);
        if let Some(nats) = &st.nats {
            http_kit::revocation::announce(nats, &st.settings.service.subject_prefix, target.0)
                .await;
        }
        st.attachments.delete_blobs(&uploads).await;
        st.avatars.delete_all(target).await;
        return Ok(Erasure {
            user_id: target.0,
            keys_shredded,
            sessions_ended: ended.len(),
            position: Some(appended.last_position),
        });
    }
    Err(ApiError::unavailable(
        "the account changed meanwhile, retry shortly",
    ))
}

#[derive(Serialize, ToSchema)]
pub struct Rotation {
    pub user_id: Uuid,
    /// The version of the user's new data key: their new values are sealed under it, the
    /// older ones still open with theirs (the log is not rewritten).
    pub version: i32,
}

#[utoipa::path(post, path = "/v1/admin/users/{user_id}/rotate-key", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 200, body = Rotation), (status = 401),
        (status = 403, description = "not_an_admin; account_erased: an erased user has no key"),
        (status = 404, description = "user_not_found")))]
pub async fn rotate_key(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(target): Path<Uuid>,
) -> Result<Response, ApiError> {
    require_admin(&st, me).await?;
    require_user(&st, UserId(target)).await?;
    let version = st
        .keyring
        .rotate(target)
        .await
        .map_err(super::me::sealing_failed)?;
    Ok(axum::Json(Rotation {
        user_id: target,
        version,
    })
    .into_response())
}
