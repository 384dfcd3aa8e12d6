//! Settings, the health/metrics router and the [`Application`] that runs the projector.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use http_kit::settings::redact_url;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{Metrics, Projector, ProjectorConfig, READ_MODELS};

/// Typed settings, layered: built-in defaults, then an optional TOML file (`APP_CONFIG_FILE`),
/// then `APP_*` environment variables.
#[derive(Clone, Deserialize)]
pub struct Settings {
    /// Address of the health and metrics endpoints (default `127.0.0.1:8083`).
    pub listen: String,
    /// PostgreSQL holding the read models.
    pub database_url: String,
    /// PostgreSQL holding the event log; defaults to `database_url`.
    pub log_database_url: Option<String>,
    pub db_max_connections: u32,
    pub nats_url: String,
    pub stream_name: String,
    pub subject_prefix: String,
    pub consumer_name: String,
    pub batch: usize,
    pub max_deliver: i64,
    pub ack_wait_ms: u64,
    /// How long a batch keeps collecting after its first event (see `ProjectorConfig::linger`).
    pub linger_ms: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "log_database_url",
                &self.log_database_url.as_deref().map(redact_url),
            )
            .field("nats_url", &redact_url(&self.nats_url))
            .field("stream_name", &self.stream_name)
            .field("subject_prefix", &self.subject_prefix)
            .field("consumer_name", &self.consumer_name)
            .field("batch", &self.batch)
            .field("linger_ms", &self.linger_ms)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Defaults, then `APP_CONFIG_FILE` (TOML) if set, then `APP_*` variables.
    pub fn load() -> Result<Self, config::ConfigError> {
        http_kit::settings::load(Self::defaults()?)
    }

    /// Built-in defaults only, ignoring the environment.
    pub fn from_defaults() -> Result<Self, config::ConfigError> {
        http_kit::settings::defaults_only(Self::defaults()?)
    }

    fn defaults() -> Result<http_kit::settings::Defaults, config::ConfigError> {
        let d = ProjectorConfig::default();
        http_kit::settings::builder()
            .set_default("listen", "127.0.0.1:8083")?
            .set_default("database_url", "postgres://postgres@127.0.0.1:5432/chat")?
            .set_default("db_max_connections", 8)?
            .set_default("nats_url", "nats://127.0.0.1:4222")?
            .set_default("stream_name", d.stream_name)?
            .set_default("subject_prefix", d.subject_prefix)?
            .set_default("consumer_name", d.consumer_name)?
            .set_default("batch", d.batch as u64)?
            .set_default("max_deliver", d.max_deliver)?
            .set_default("ack_wait_ms", d.ack_wait.as_millis() as u64)?
            .set_default("linger_ms", d.linger.as_millis() as u64)
    }

    pub fn projector_config(&self) -> ProjectorConfig {
        ProjectorConfig {
            stream_name: self.stream_name.clone(),
            subject_prefix: self.subject_prefix.clone(),
            consumer_name: self.consumer_name.clone(),
            batch: self.batch.max(1),
            max_deliver: self.max_deliver,
            ack_wait: Duration::from_millis(self.ack_wait_ms.max(1000)),
            linger: Duration::from_millis(self.linger_ms),
            ..ProjectorConfig::default()
        }
    }

    /// Connects to the read-model database and the log database (the same pool when no
    /// `log_database_url` is set).
    pub async fn connect_databases(&self) -> anyhow::Result<(PgPool, PgPool)> {
        let pool = connect(&self.database_url, self.db_max_connections)
            .await
            .context("read-model database (APP_DATABASE_URL)")?;
        let log = match &self.log_database_url {
            Some(url) if !url.is_empty() && url != &self.database_url => {
                connect(url, self.db_max_connections)
                    .await
                    .context("log database (APP_LOG_DATABASE_URL)")?
            }
            _ => pool.clone(),
        };
        Ok((pool, log))
    }
}

async fn connect(url: &str, max: u32) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(url).context("not a valid PostgreSQL URL")?;
    Ok(eventlog::PgEventStore::pool_options(max.max(2))
        .connect_with(opts)
        .await?)
}

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
