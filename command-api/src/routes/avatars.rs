//! One's avatar (issue #18): `PUT /v1/me/avatar` with the image as the body, `DELETE` to go
//! without. The image is checked and stored first (`crate::avatars`), then an `AvatarChanged`
//! of the user's stream names it, so other members' views update live (query-api's
//! `member_updated`). The picture it replaced is deleted once the new event committed; one the
//! stream never named (the same picture again, a refused change) is deleted at once. After a
//! failure whose outcome is unknown the new blob is kept: at worst an orphan under the user's
//! prefix, deleted with the rest at an erasure, never a named picture that is gone.

use super::me::{Changed, change};
use crate::avatars::{AVATAR_MAX_BYTES, AvatarError};
use crate::error::ApiError;
use crate::extract::AuthUser;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use events::UserId;
use events::avatar::AvatarRef;
use events::user;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// The caller's avatar after the request.
#[derive(Serialize, ToSchema)]
pub struct AvatarAnswer {
    /// The picture's id; null when there is none.
    pub avatar_id: Option<Uuid>,
    /// Where query-api serves it (`GET /v1/users/{user_id}/avatar?v=<avatar_id>`); null when
    /// there is none.
    pub avatar_url: Option<String>,
    /// `image/png` or `image/jpeg`: the server's square rendering of the upload.
    pub content_type: Option<String>,
    /// Bytes stored.
    pub size: Option<u64>,
    /// Its width and height in pixels (at most 256).
    pub side: Option<u32>,
    /// The log position of the `AvatarChanged`; null when nothing changed (the same picture
    /// again, or removing none).
    pub position: Option<i64>,
}

impl AvatarAnswer {
    fn new(user: UserId, avatar: Option<&AvatarRef>, position: Option<i64>) -> AvatarAnswer {
        AvatarAnswer {
            avatar_id: avatar.map(|a| a.avatar_id.0),
            avatar_url: avatar.map(|a| events::avatar::url(user, a.avatar_id)),
            content_type: avatar.map(|a| a.content_type.clone()),
            size: avatar.map(|a| a.size),
            side: avatar.map(|a| a.side),
            position,
        }
    }
}

#[utoipa::path(put, path = "/v1/me/avatar", security(("bearer" = [])),
    request_body(content = Vec<u8>, description = "The image's bytes: PNG, JPEG, WebP or GIF (sniffed from the bytes, whatever the Content-Type), at most 2 MiB. It is stored as a square of at most 256 px, cut from its middle.", content_type = "application/octet-stream"),
    responses((status = 200, body = AvatarAnswer, description = "The new avatar; `position` is null when it is the picture already"),
        (status = 400, description = "avatar_empty, avatar_unreadable (not a decodable image), upload_incomplete"),
        (status = 401), (status = 403, description = "account_erased"),
        (status = 413, description = "avatar_too_large: over 2 MiB, or too many pixels to decode; nothing stored"),
        (status = 415, description = "avatar_type_not_allowed: not a PNG, JPEG, WebP or GIF"),
        (status = 429, description = "rate_limited: too many uploads from this user (Retry-After)")))]
pub async fn set_avatar(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<AvatarAnswer>), ApiError> {
    st.limits.upload.check(&me.0)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > AVATAR_MAX_BYTES) {
        return Err(AvatarError::TooLarge {
            max_bytes: AVATAR_MAX_BYTES,
        }
        .into());
    }
    if declared == Some(0) {
        return Err(AvatarError::Empty.into());
    }
    let avatar = st.avatars.store(me, body.into_data_stream()).await?;
    let changed = change(&st, me, |state| {
        user::change_avatar(state, Some(avatar.clone()))
    })
    .await
    .inspect_err(|e| {
        tracing::warn!(error = ?e, user = %me, avatar = %avatar.avatar_id,
            "an avatar's change failed; its blob is kept");
    })?;
    let Changed {
        before,
        after,
        position,
    } = changed;
    if position.is_none() {
        // Not named by the stream: the same picture again, or an erased account.
        st.avatars.delete(me, avatar.avatar_id).await;
        if after.erased {
            return Err(super::me::sealing_failed(vault::VaultError::Erased(me.0)));
        }
    } else if let Some(old) = before.avatar
        && old.avatar_id != avatar.avatar_id
    {
        st.avatars.delete(me, old.avatar_id).await;
    }
    Ok((
        StatusCode::OK,
        Json(AvatarAnswer::new(me, after.avatar.as_ref(), position)),
    ))
}

#[utoipa::path(delete, path = "/v1/me/avatar", security(("bearer" = [])),
    responses((status = 200, body = AvatarAnswer, description = "No avatar any more (every field null but `position`, which is null when there was none)"),
        (status = 401)))]
pub async fn remove_avatar(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<AvatarAnswer>, ApiError> {
    let Changed {
        before,
        after,
        position,
    } = change(&st, me, |state| user::change_avatar(state, None)).await?;
    if position.is_some()
        && let Some(old) = before.avatar
    {
        st.avatars.delete(me, old.avatar_id).await;
    }
    Ok(Json(AvatarAnswer::new(me, after.avatar.as_ref(), position)))
}

impl From<AvatarError> for ApiError {
    fn from(e: AvatarError) -> Self {
        match e {
            AvatarError::TooLarge { max_bytes } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "avatar_too_large",
                format!("an avatar may be at most {max_bytes} bytes; nothing was stored"),
            ),
            AvatarError::TooManyPixels(m) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "avatar_too_large",
                format!("the image has too many pixels to decode ({m}); nothing was stored"),
            ),
            AvatarError::TypeNotAllowed(t) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "avatar_type_not_allowed",
                format!("an avatar must be a PNG, JPEG, WebP or GIF image, not {t}"),
            ),
            AvatarError::Empty => {
                ApiError::bad_request("avatar_empty", "the image is empty; nothing was stored")
            }
            AvatarError::Unreadable(m) => ApiError::bad_request(
                "avatar_unreadable",
                format!("the image does not decode ({m}); nothing was stored"),
            ),
            AvatarError::Body => ApiError::bad_request(
                "upload_incomplete",
                "the image did not arrive whole; nothing was stored",
            ),
            AvatarError::Store(e) => ApiError::unavailable_because("blob storage failed", &e),
        }
    }
}
