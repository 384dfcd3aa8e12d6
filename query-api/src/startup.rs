//! Building the query side separately from serving it, so tests (and the
//! single-node platform) run the same router.

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::Live;
use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_kit::auth::JwtKeys;
use http_kit::error::{ApiError, json_errors};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The query routes (REST and WebSocket) with their state, without health or
/// metrics — the single-node platform merges these beside the command routes.
pub fn api_routes(state: AppState) -> Router {
    let timeout = Duration::from_millis(state.settings.request_timeout_ms);
    let body_limit = state.settings.body_limit_bytes;
    // The WebSocket route is outside the timeout: a socket lives for hours.
    let rest = crate::routes::router().layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        timeout,
    ));
    rest.merge(crate::ws::router())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::new())
        // Outermost, so timeouts and panics get the JSON error shape too.
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Every route of the query side, served alone.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .with_state(state.clone())
        .merge(api_routes(state))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::map_response(json_errors))
        .layer(TraceLayer::new_for_http())
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the read models can be queried.
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let ok = sqlx::query("SELECT position FROM projection_checkpoints LIMIT 1")
        .execute(&st.pool)
        .await
        .is_ok();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(serde_json::json!({ "ready": ok })))
}

async fn metrics(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let body = st.metrics.render().map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

async fn openapi() -> impl IntoResponse {
    axum::Json(crate::routes::openapi())
}

/// Builds the state: pools, migrations, NATS, the live hub.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let pool = connect(&settings.database_url, settings.db_max_connections).await?;
    let log_pool = if settings.log_database_url() == settings.database_url {
        pool.clone()
    } else {
        connect(settings.log_database_url(), settings.db_max_connections).await?
    };
    migrate(&pool).await.context("query-api migrations")?;
    let jwt = JwtKeys::new(&settings.auth_config())
        .context("APP_JWT_SECRET must be at least 32 bytes")?;
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(&settings.nats_url)
        .await
        .context("connecting to NATS")?;
    let metrics = Metrics::new()?;
    let settings = Arc::new(settings);
    let live = Live::start(
        settings.clone(),
        pool.clone(),
        log_pool.clone(),
        nats.clone(),
        metrics.clone(),
    )
    .await?;
    Ok(AppState {
        pool,
        log_pool,
        jwt,
        nats,
        live,
        metrics,
        settings,
    })
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations");
    m.set_ignore_missing(true);
    m.run(pool).await
}

async fn connect(url: &str, max: u32) -> anyhow::Result<PgPool> {
    eventlog::PgEventStore::pool_options(max)
        .connect(url)
        .await
        .context("connecting to PostgreSQL")
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    pub state: AppState,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listen = settings.listen.clone();
        let state = build_state(settings).await?;
        let listener = TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        Ok(Self {
            listener,
            router: router(state.clone()),
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
    }
}
