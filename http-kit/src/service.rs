//! The routes every service serves beside its API, and the layers every API gets:
//!
//! - [`Ops`]: `/healthz`, `/readyz` ([`Readiness`]), `/metrics` ([`Scrape`]) and, where
//!   the service has one, `/openapi.json`;
//! - [`router`]: a whole service: the ops routes beside the API routes, a JSON 404 for
//!   anything else, the JSON error shape on every error, request tracing;
//! - [`limit`] and [`timeout`]: an API's request limits ([`RequestLimits`]).
//!
//! Serving is [`crate::serve::Server`].

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

use crate::error::{BrokenConnection, json_errors};
use crate::health::{Readiness, healthz};
use crate::metrics::Scrape;
use crate::settings::RequestLimits;

/// The operational endpoints of a service.
#[derive(Clone)]
pub struct Ops {
    pub readiness: Readiness,
    pub scrape: Scrape,
    pub openapi: Option<utoipa::openapi::OpenApi>,
}

impl Ops {
    /// `/healthz`, `/readyz` from `readiness`, `/metrics` from `scrape`.
    pub fn new(readiness: Readiness, scrape: Scrape) -> Self {
        Self {
            readiness,
            scrape,
            openapi: None,
        }
    }

    /// Serves `doc` at `/openapi.json` too.
    pub fn openapi(mut self, doc: utoipa::openapi::OpenApi) -> Self {
        self.openapi = Some(doc);
        self
    }

    /// Both services' checks, metrics and OpenAPI documents (one process serving
    /// several roles).
    pub fn merge(self, other: Ops) -> Self {
        let openapi = match (self.openapi, other.openapi) {
            (Some(mut mine), Some(theirs)) => {
                mine.merge(theirs);
                Some(mine)
            }
            (mine, theirs) => mine.or(theirs),
        };
        Self {
            readiness: self.readiness.merge(other.readiness),
            scrape: self.scrape.merge(other.scrape),
            openapi,
        }
    }

    /// The ops routes alone.
    pub fn routes(self) -> Router {
        let Ops {
            readiness,
            scrape,
            openapi,
        } = self;
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route(
                "/readyz",
                get(move || async move { readiness.respond().await }),
            )
            .route(
                "/metrics",
                get(move || async move { scrape.respond().await }),
            );
        match openapi {
            Some(doc) => {
                let doc = axum::Json(doc);
                router.route("/openapi.json", get(move || async move { doc }))
            }
            None => router,
        }
    }
}

/// A whole service: `ops` beside `api`, 404 for any other path, the JSON error shape
/// on every error response, request tracing.
pub fn router(ops: Ops, api: Router) -> Router {
    ops.routes()
        .merge(api)
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http())
        // Outermost: every layer and handler runs inside the request's correlation span.
        .layer(axum::middleware::from_fn(crate::correlation::correlate))
}

/// An API's guards: its body limit, a 408 for a body that stalls (see
/// [`crate::extract::Json`]), a 500 for a panicking handler, and the JSON error shape
/// outermost so those responses get it too.
pub fn limit<S>(api: Router<S>, limits: &RequestLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    api.layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(
            limits.body_timeout_ms,
        )))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(json_errors))
}

/// Runs a read (`GET`, `HEAD`; not a WebSocket upgrade) once more when it failed because a
/// database connection broke under it ([`BrokenConnection`]): a connection that went stale
/// while idle (PostgreSQL restarted) fails its first statement, and the pool has discarded
/// it by then, so the second run meets a live one. Reads change nothing, so running one
/// twice is harmless; a second failure is answered as it is.
pub async fn retry_broken_reads(req: Request, next: Next) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD)
        && !req.headers().contains_key(header::UPGRADE);
    if !read {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let res = next
        .clone()
        .run(Request::from_parts(parts.clone(), body))
        .await;
    if res.extensions().get::<BrokenConnection>().is_none() {
        return res;
    }
    tracing::info!(path = %parts.uri.path(), "a read met a broken database connection; retrying it once");
    // No read has a body.
    next.run(Request::from_parts(parts, Body::empty())).await
}

/// A 503 (in the JSON shape, with [`limit`]) for a request running longer than
/// `request_timeout_ms`. Not for long-lived routes such as WebSockets.
pub fn timeout<S>(routes: Router<S>, limits: &RequestLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_millis(limits.request_timeout_ms),
    ))
}
