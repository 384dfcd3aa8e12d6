//! The health/metrics router and the [`Application`] that runs the projector.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::configuration::Settings;
use crate::{Metrics, Projector, READ_MODELS};

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub stream_name: String,
    pub metrics: Metrics,
}

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready when PostgreSQL answers and NATS is connected; reports the checkpoint.
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let checkpoint = crate::checkpoint(&st.pool, READ_MODELS).await.ok();
    let nats = matches!(
        st.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    let ready = checkpoint.is_some() && nats;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "ready": ready,
            "postgres": checkpoint.is_some(),
            "nats": nats,
            "checkpoint": checkpoint,
        })),
    )
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let js = async_nats::jetstream::new(st.nats.clone());
    if let Ok(lag) = crate::lag(&js, &st.pool, &st.stream_name).await {
        st.metrics.lag.with_label_values(&[READ_MODELS]).set(lag);
    }
    if let Ok(cp) = crate::checkpoint(&st.pool, READ_MODELS).await {
        st.metrics
            .checkpoint
            .with_label_values(&[READ_MODELS])
            .set(cp);
    }
    match st.metrics.render() {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

/// The projector process: the consumer loop plus the health and metrics endpoints.
pub struct Application {
    listener: TcpListener,
    router: Router,
    projector: Projector,
    pub state: AppState,
}

impl Application {
    /// Connects, migrates the read models, binds. Nothing runs until [`Application::run`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (pool, log) = settings.connect_databases().await?;
        crate::migrate(&pool)
            .await
            .context("read-model migrations")?;
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(&settings.nats_url)
            .await
            .context("connecting to NATS")?;
        let metrics = Metrics::new()?;
        let projector =
            Projector::new(pool.clone(), log, nats.clone(), settings.projector_config())
                .with_metrics(metrics.clone());
        let state = AppState {
            pool,
            nats,
            stream_name: settings.stream_name.clone(),
            metrics,
        };
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(Self {
            listener,
            router: router(state.clone()),
            projector,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs the projector and serves HTTP until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let projector = tokio::spawn(self.projector.run(stopped(stop_rx.clone())));
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future();
        let server = tokio::spawn(server);
        shutdown.await;
        let _ = stop_tx.send(true);
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(10), projector)
            .await
            .unwrap_or(Ok(Ok(())))
        {
            tracing::error!(error = %format!("{e:#}"), "projector stopped with an error");
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        Ok(())
    }
}
