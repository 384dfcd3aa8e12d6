//! Extractors whose rejections are [`ApiError`], so a malformed body, a bad path
//! or a missing token gets the same JSON error shape as every other failure.

use crate::auth::JwtKeys;
use crate::error::ApiError;
use axum::extract::FromRef;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use events::UserId;
use serde::de::DeserializeOwned;

/// `axum::Json` with our error shape. Command bodies also use
/// `#[serde(deny_unknown_fields)]`, so `{"sender_id": …}` is a 400, not ignored.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if stalled(&r) {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        );
    }
    match r {
        JsonRejection::JsonDataError(e) => ApiError::bad_request("invalid_body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        ),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// Whether reading the body failed because it stalled past the body timeout
/// ([`crate::service::limit`]).
fn stalled(r: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(r);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `axum::extract::Path` with our error shape (e.g. a room id that is not a UUID).
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::bad_request("invalid_path", e.body_text()))
            }
            Err(e) => Err(ApiError::bad_request("invalid_path", e.body_text())),
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <jwt>`.
#[derive(Clone, Copy, Debug)]
pub struct AuthUser(pub UserId);

impl<S> FromRequestParts<S> for AuthUser
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = bearer_claims(parts, &JwtKeys::from_ref(state))?;
        Ok(AuthUser(UserId(claims.sub)))
    }
}

/// The authenticated caller and the session (login) their token belongs to, from
/// `Authorization: Bearer <jwt>`; `session` is `None` for a token issued without one.
#[derive(Clone, Copy, Debug)]
pub struct AuthSession {
    pub user: UserId,
    pub session: Option<uuid::Uuid>,
}

impl<S> FromRequestParts<S> for AuthSession
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = bearer_claims(parts, &JwtKeys::from_ref(state))?;
        Ok(AuthSession {
            user: UserId(claims.sub),
            session: claims.sid,
        })
    }
}

fn bearer_claims(parts: &Parts, keys: &JwtKeys) -> Result<crate::auth::Claims, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("unauthorized", "missing bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("unauthorized", "missing bearer token"))?;
    Ok(keys.verify_access(token.trim())?)
}

/// The optional `Idempotency-Key` header: 1–128 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = v
            .to_str()
            .ok()
            .filter(|k| valid_client_key(k))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1-128 visible ASCII characters",
                )
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// A client-chosen key (`Idempotency-Key`, `client_msg_id`): 1–128 visible ASCII characters.
/// [`valid_client_key`] as a schema states it.
pub const CLIENT_KEY_RULE: events::values::TextRule = events::values::TextRule {
    min_chars: 1,
    max_chars: MAX_IDEMPOTENCY_KEY_LEN,
    pattern: Some("^[!-~]*$"),
};

pub fn valid_client_key(k: &str) -> bool {
    // CLIENT_KEY_RULE states this rule in the OpenAPI document.
    !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
}
