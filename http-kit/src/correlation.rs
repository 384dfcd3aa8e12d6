//! The correlation id of a request: taken from `X-Request-Id` when the client sent a UUID,
//! otherwise a new one; echoed in the response's `X-Request-Id`, carried by every event the
//! request appends (`correlation_id` in the log), and a field of the request's span. So one
//! grep of a JSON log for it shows the request, its append, its relay and its projection
//! (at `debug` level; see `docs/architecture.md`, "Tracing").

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;
use uuid::Uuid;

/// The header that carries a request's correlation id, both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: CorrelationId;
}

/// The correlation id of the request being handled on this task, if any: what a command
/// records in its events' `correlation_id`.
pub fn current() -> Option<CorrelationId> {
    CURRENT.try_with(|c| *c).ok()
}

/// A request's correlation id (the extractor never fails: [`correlate`] always sets one, and
/// without it a fresh id is made).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorrelationId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CorrelationId>()
            .copied()
            .unwrap_or_else(|| CorrelationId(Uuid::now_v7())))
    }
}

/// Middleware: gives the request its correlation id and runs it inside a `request` span
/// that carries the id, the method and the matched route.
pub async fn correlate(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7);
    req.extensions_mut().insert(CorrelationId(id));
    let span = tracing::debug_span!(
        "request",
        correlation_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let handled = async move {
        let res = next.run(req).await;
        tracing::debug!(status = res.status().as_u16(), "request finished");
        res
    };
    let mut res = CURRENT
        .scope(CorrelationId(id), handled.instrument(span))
        .await;
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        res.headers_mut().insert(HEADER, v);
    }
    res
}
