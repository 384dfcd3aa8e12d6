//! The web client's files: a built single-page application (`index.html` and the
//! content-hashed files Vite writes under `assets/`) served beside the API.
//!
//! - `GET /` (and `/index.html`) answers `index.html` with `Cache-Control: no-cache`: a
//!   browser revalidates it on every load, so a new build is picked up at once;
//! - `GET /assets/...` answers with `Cache-Control: public, max-age=31536000, immutable`:
//!   their names change whenever their content does;
//! - the other files at the top of the directory (an icon, say) are served `no-cache`;
//! - every answer carries a strict Content-Security-Policy (same origin only, no inline
//!   script or style), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//!   and is compressed (gzip, brotli) when the client accepts it.
//!
//! The directory is read when the router is built: a file added later at the top level
//! is not served until a restart (assets are looked up per request).

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::get;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::ApiError;

/// What the client may load and connect to: its own origin only (`connect-src 'self'`
/// covers the same-origin WebSocket), no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Hashed, immutable files: a year, never revalidated.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Everything else: stored, but revalidated on every use.
pub const REVALIDATE: &str = "no-cache";

/// The routes serving the client built into `dir`; `None` when `dir` holds no
/// `index.html` (then `/` answers 404 `web_client_not_built`).
pub fn client(dir: &Path) -> Option<Router> {
    let index = dir.join("index.html");
    if !index.is_file() {
        return None;
    }
    let revalidated = Router::new()
        .route_service("/", ServeFile::new(&index))
        .route_service("/index.html", ServeFile::new(&index));
    let revalidated = top_level_files(dir)
        .into_iter()
        .fold(revalidated, |router, (name, path)| {
            router.route_service(&format!("/{name}"), ServeFile::new(path))
        })
        .layer(cache_control(REVALIDATE));
    let assets = Router::new()
        .nest_service("/assets", ServeDir::new(dir.join("assets")))
        .layer(cache_control(IMMUTABLE));
    Some(
        revalidated
            .merge(assets)
            .layer(CompressionLayer::new())
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            )),
    )
}

/// The client's routes when it is built in `dir`, else `/` answering 404
/// `web_client_not_built` (with how to build it) so the cause is plain.
pub fn client_or_hint(dir: &Path) -> Router {
    client(dir).unwrap_or_else(|| {
        let message = format!(
            "the web client is not built: no index.html in {} (run scripts/web.sh build)",
            dir.display()
        );
        tracing::warn!("{message}");
        Router::new().route(
            "/",
            get(move || {
                let message = message.clone();
                async move { ApiError::new(StatusCode::NOT_FOUND, "web_client_not_built", message) }
            }),
        )
    })
}

fn cache_control(value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static(value))
}

/// Regular files directly in `dir` other than `index.html`, by a name that is safe as a
/// path segment.
fn top_level_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(name, _)| {
            name != "index.html"
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .collect();
    files.sort();
    files
}
