//! Single-node mode (design.md decision 10): the command API, the log → JetStream
//! relay, the projector and the query API in one process, on one port. The same
//! roles run as separate processes (`command-api`, `projector`, `query-api`) to scale.

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_kit::error::{ApiError, json_errors};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

/// The settings of the three roles, all read from the same `APP_*` variables, and
/// the one address they share.
pub struct Settings {
    pub listen: String,
    pub command: command_api::configuration::Settings,
    pub query: query_api::configuration::Settings,
    pub projector: projector::configuration::Settings,
}

impl Settings {
    /// Defaults, `APP_CONFIG_FILE`, then `APP_*`; listens on `127.0.0.1:8080` unless
    /// `APP_LISTEN` says otherwise.
    pub fn load() -> anyhow::Result<Self> {
        Ok(Self {
            listen: std::env::var("APP_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned()),
            command: command_api::configuration::Settings::load().context("command settings")?,
            query: query_api::configuration::Settings::load().context("query settings")?,
            projector: projector::configuration::Settings::load().context("projector settings")?,
        })
    }
}

#[derive(Clone)]
struct Health {
    command: command_api::state::AppState,
    query: query_api::state::AppState,
    projector: projector::Metrics,
}

pub struct Platform {
    listener: TcpListener,
    router: Router,
    relay: Option<eventlog::relay::Relay>,
    /// A runner for every registered projection.
    projectors: Vec<projector::Projector>,
    pub command: command_api::state::AppState,
    pub query: query_api::state::AppState,
}

impl Platform {
    /// Connects, migrates (log, credentials, read models, presence), binds.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (command, relay) = command_api::startup::build_state(settings.command).await?;
        projector::migrate(&command.pool)
            .await
            .context("read-model migrations")?;
        let query = query_api::startup::build_state(settings.query).await?;
        let projector_metrics = projector::Metrics::new()?;
        // Every registered projection, stored with the read models; the log is the command
        // side's database.
        let projectors = projector::startup::runners(
            &projector::registry(&query.pool),
            &settings.projector,
            &query.pool,
            &command.pool,
            &query.nats,
            &projector_metrics,
        );
        let health = Health {
            command: command.clone(),
            query: query.clone(),
            projector: projector_metrics,
        };
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(openapi))
            .with_state(health)
            .merge(command_api::startup::api_routes(command.clone()))
            .merge(query_api::startup::api_routes(query.clone()))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(axum::middleware::map_response(json_errors))
            .layer(TraceLayer::new_for_http());
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(Self {
            listener,
            router,
            relay,
            projectors,
            command,
            query,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`, then stops the relay and the projections.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let relay = self
            .relay
            .map(|r| tokio::spawn(command_api::startup::run_relay(r, stop_rx.clone())));
        let mut stop = stop_rx.clone();
        let projector = tokio::spawn(projector::run_all(self.projectors, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
        let _ = stop_tx.send(true);
        if let Some(r) = relay {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
        match tokio::time::timeout(Duration::from_secs(5), projector).await {
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "projector stopped with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "projector task failed"),
            _ => {}
        }
        Ok(())
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the log and the read models answer.
async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    let log = sqlx::query("SELECT 1")
        .execute(&h.command.pool)
        .await
        .is_ok();
    let read = sqlx::query("SELECT 1 FROM projection_checkpoints LIMIT 1")
        .execute(&h.query.pool)
        .await
        .is_ok();
    let status = if log && read {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({ "ready": log && read, "log": log, "read_models": read })),
    )
}

async fn metrics(State(h): State<Health>) -> Result<impl IntoResponse, ApiError> {
    let mut body = h.command.render_metrics().map_err(ApiError::internal)?;
    body.push_str(&h.query.metrics.render().map_err(ApiError::internal)?);
    body.push_str(&h.projector.render().map_err(ApiError::internal)?);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

async fn openapi() -> impl IntoResponse {
    let mut doc = command_api::routes::health::ApiDoc::openapi();
    doc.merge(query_api::routes::openapi());
    doc.info.title = "chat".to_owned();
    axum::Json(doc)
}
