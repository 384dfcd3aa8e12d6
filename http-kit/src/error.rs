//! The one error type of this service and how it becomes a response:
//! `{"error": {"code": "...", "message": "..."}}`. Domain rejections are 4xx,
//! conflicts 409 (or 503 with Retry-After), infrastructure failures an opaque 500
//! whose cause is logged once, here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::room::RoomError;
use events::values::ValidationError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u32>,
    /// The failure was a database connection that broke under the request (marked on the
    /// response with [`BrokenConnection`]): a read may be retried at once.
    pub broken_connection: bool,
}

/// On an error response: a database connection broke under the request (a stale one, idle
/// across a restart of PostgreSQL). A read can be run again at once on another connection
/// ([`crate::service::retry_broken_reads`]).
#[derive(Clone, Copy, Debug)]
pub struct BrokenConnection;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            broken_connection: false,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// An infrastructure failure: the cause and all its sources are logged once, here; the
    /// client sees nothing of them.
    pub fn internal<E: std::error::Error + ?Sized>(cause: &E) -> Self {
        tracing::error!(error = %Chain(cause), "internal error");
        Self::internal_response()
    }

    /// An infrastructure failure described by a message (no error value to chain).
    pub fn internal_message(message: &str) -> Self {
        tracing::error!(error = message, "internal error");
        Self::internal_response()
    }

    fn internal_response() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// The service cannot take the request now; retrying later may work.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// [`Self::unavailable`] because of `cause`, which is logged (with its sources) once.
    pub fn unavailable_because<E: std::error::Error + ?Sized>(
        message: impl Into<String>,
        cause: &E,
    ) -> Self {
        tracing::warn!(error = %Chain(cause), "unavailable");
        Self::unavailable(message)
    }

    pub fn body(code: &str, message: &str) -> serde_json::Value {
        json!({ "error": { "code": code, "message": message } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(Self::body(self.code, &self.message))).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.broken_connection {
            res.extensions_mut().insert(BrokenConnection);
        }
        res
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::bad_request(e.code(), e.to_string())
    }
}

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        use RoomError as R;
        use StatusCode as S;
        let (status, code) = match e {
            R::NotFound => (S::NOT_FOUND, "room_not_found"),
            R::AlreadyExists => (S::CONFLICT, "room_exists"),
            R::NotMember => (S::FORBIDDEN, "not_a_member"),
            R::AlreadyMember => (S::CONFLICT, "already_member"),
            R::TargetNotMember => (S::NOT_FOUND, "member_not_found"),
            R::AlreadyInvited => (S::CONFLICT, "already_invited"),
            R::OwnerCannotLeave => (S::CONFLICT, "owner_cannot_leave"),
            R::NotPermitted => (S::FORBIDDEN, "forbidden"),
            R::CannotTargetOwner => (S::FORBIDDEN, "cannot_target_owner"),
            R::CannotTargetSelf => (S::UNPROCESSABLE_ENTITY, "cannot_target_self"),
            R::DirectRoom => (S::CONFLICT, "direct_room"),
            R::DirectWithSelf => (S::UNPROCESSABLE_ENTITY, "direct_with_self"),
            R::CannotGrantOwner => (S::BAD_REQUEST, "cannot_grant_owner"),
            R::MessageNotFound => (S::NOT_FOUND, "message_not_found"),
            R::MessageDeleted => (S::CONFLICT, "message_deleted"),
            R::NotAuthor => (S::FORBIDDEN, "not_author"),
            R::ReplyTargetNotFound => (S::UNPROCESSABLE_ENTITY, "reply_target_not_found"),
            R::TooManyReactions => (S::UNPROCESSABLE_ENTITY, "too_many_reactions"),
            R::ReadMarkerBeyondLastMessage => (S::UNPROCESSABLE_ENTITY, "seq_out_of_range"),
            R::Banned => (S::FORBIDDEN, "banned"),
            R::TargetBanned => (S::CONFLICT, "user_banned"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(e: crate::auth::AuthError) -> Self {
        use crate::auth::AuthError as A;
        match e {
            A::InvalidToken => Self::unauthorized("invalid_token", "invalid access token"),
            A::Revoked => Self::unauthorized("token_revoked", "this account is deactivated"),
            A::Expired => Self::unauthorized("token_expired", "access token expired"),
            A::InvalidCredentials => {
                Self::unauthorized("invalid_credentials", "invalid username or password")
            }
            A::Config(m) => Self::internal_message(&m),
            A::Hashing => Self::internal_message("password hashing failed"),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        eventlog::StoreError::from(e).into()
    }
}

/// A database that cannot be reached (or has no connection free in time) is a 503 with
/// `Retry-After`; any other database failure an opaque 500.
impl From<eventlog::StoreError> for ApiError {
    fn from(e: eventlog::StoreError) -> Self {
        if e.is_unavailable() {
            Self {
                broken_connection: e.is_broken_connection(),
                ..Self::unavailable_because("database unavailable, retry shortly", &e)
            }
        } else {
            Self::internal(&e)
        }
    }
}

/// An error and its sources, `outer: inner: innermost`.
pub struct Chain<'a, E: ?Sized>(pub &'a E);

impl<E: std::error::Error + ?Sized> std::fmt::Display for Chain<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// Gives every error response that left a layer (body limit, timeout, unknown
/// route) without a JSON body the standard error shape.
pub async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "request timed out"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "service unavailable"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "expected application/json")
        }
        s if s.is_server_error() => ("internal", "internal server error"),
        _ => ("bad_request", "bad request"),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = res.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    // Every 503 says when to try again, as the API document promises: the request timeout's
    // bare 503 had no `Retry-After` (found by the chaos battery, R4, in a 20 s outage).
    if status == StatusCode::SERVICE_UNAVAILABLE {
        out.headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from(1));
    }
    out
}
