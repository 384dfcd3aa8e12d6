//! Building the application separately from serving it, so tests run the same
//! app on port 0 and learn the bound address.

use crate::auth::{JwtKeys, PasswordHasher};
use crate::configuration::Settings;
use crate::error::json_errors;
use crate::metrics::Metrics;
use crate::rooms::RoomCommands;
use crate::routes;
use crate::state::{AppState, Shared};
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use eventlog::relay::{Relay, RelayConfig};
use eventlog::{GroupCommitConfig, PgEventStore, Recent};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The command routes with their state and layers, without health, metrics or a
/// fallback — the single-node platform merges these beside the query routes.
pub fn api_routes(state: AppState) -> Router {
    let body_limit = state.settings.body_limit_bytes;
    let timeout = Duration::from_millis(state.settings.request_timeout_ms);
    Router::new()
        .route("/v1/auth/register", post(routes::auth::register))
        .route("/v1/auth/login", post(routes::auth::login))
        .route("/v1/auth/refresh", post(routes::auth::refresh))
        .route("/v1/rooms", post(routes::rooms::create_room))
        .route(
            "/v1/rooms/{room_id}",
            axum::routing::patch(routes::rooms::update_room),
        )
        .route("/v1/rooms/{room_id}/join", post(routes::rooms::join))
        .route("/v1/rooms/{room_id}/leave", post(routes::rooms::leave))
        .route("/v1/rooms/{room_id}/invites", post(routes::rooms::invite))
        .route(
            "/v1/rooms/{room_id}/members/{user_id}",
            delete(routes::rooms::kick),
        )
        .route(
            "/v1/rooms/{room_id}/members/{user_id}/role",
            put(routes::rooms::change_role),
        )
        .route("/v1/direct", post(routes::rooms::open_direct))
        .route(
            "/v1/rooms/{room_id}/messages",
            post(routes::messages::send_message),
        )
        .route(
            "/v1/rooms/{room_id}/messages/{message_id}",
            axum::routing::patch(routes::messages::edit_message)
                .delete(routes::messages::delete_message),
        )
        .route(
            "/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}",
            put(routes::messages::add_reaction).delete(routes::messages::remove_reaction),
        )
        .route(
            "/v1/rooms/{room_id}/read",
            post(routes::messages::mark_read),
        )
        .route(
            "/v1/rooms/{room_id}/typing",
            post(routes::ephemeral::typing),
        )
        .route(
            "/v1/rooms/{room_id}/ephemeral",
            post(routes::ephemeral::ephemeral),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::new())
        // Outside the timeout and panic layers, so their responses get the JSON shape too.
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Every route of the command side, served alone (tests call it without a socket).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/openapi.json", get(routes::health::openapi))
        .with_state(state.clone())
        .merge(api_routes(state))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(axum::middleware::map_response(json_errors))
        .layer(TraceLayer::new_for_http())
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    relay: Option<Relay>,
    pub state: AppState,
}

impl Application {
    /// Connects, migrates, binds. Nothing is served until [`Application::run`].
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (state, relay) = build_state(settings.clone()).await?;
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        Ok(Self {
            listener,
            router: router(state.clone()),
            relay,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let relay_task = self
            .relay
            .map(|relay| tokio::spawn(run_relay(relay, stop_rx)));
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        let _ = stop_tx.send(true);
        if let Some(t) = relay_task {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        Ok(())
    }
}

/// Runs the relay until `stop` turns true.
pub async fn run_relay(relay: Relay, mut stop: watch::Receiver<bool>) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = relay.run(stopped).await {
        tracing::error!(error = %e, "relay stopped");
    }
}

/// Connects, migrates and wires the command side; the relay is returned to be run
/// by whoever serves (see [`run_relay`]).
pub async fn build_state(settings: Settings) -> anyhow::Result<(AppState, Option<Relay>)> {
    let pool = connect_db(&settings).await?;
    eventlog::PgEventStore::migrate(&pool)
        .await
        .context("event log migrations")?;
    migrate(&pool).await.context("command-api migrations")?;

    let metrics = Metrics::new()?;
    // The relay publishes what this process commits straight from memory.
    let recent = settings.relay_enabled.then(Recent::default);
    let store = PgEventStore::new(
        pool.clone(),
        GroupCommitConfig {
            max_batch: settings.group_commit_max_batch,
            recent: recent.clone(),
            dedicated_thread: true,
            metrics: Some(metrics.commit.clone()),
            ..GroupCommitConfig::default()
        },
    );
    let auth = settings.auth_config();
    let jwt = JwtKeys::new(&auth).context("APP_JWT_SECRET must be at least 32 bytes")?;
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(&settings.nats_url)
        .await
        .ok();
    let relay = match (&nats, settings.relay_enabled) {
        (Some(client), true) => Some(
            Relay::new(
                pool.clone(),
                client.clone(),
                RelayConfig {
                    stream_name: settings.stream_name.clone(),
                    subject_prefix: settings.subject_prefix.clone(),
                    ..RelayConfig::default()
                },
            )
            .with_recent(recent),
        ),
        _ => None,
    };
    let state = AppState::new(Shared {
        pool: pool.clone(),
        rooms: RoomCommands::new(store.clone()),
        store,
        hasher: PasswordHasher::new(&auth),
        jwt,
        refresh_ttl: auth.refresh_ttl,
        metrics,
        nats,
        settings: Arc::new(settings.clone()),
    });
    Ok((state, relay))
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations");
    m.set_ignore_missing(true);
    m.run(pool).await
}

async fn connect_db(settings: &Settings) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(&settings.database_url)
        .context("APP_DATABASE_URL is not a valid PostgreSQL URL")?;
    if settings.create_database
        && let Some(db) = opts.get_database().map(str::to_owned)
    {
        let mut admin = opts
            .clone()
            .database("postgres")
            .connect()
            .await
            .context("connecting to PostgreSQL")?;
        let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&db)
            .fetch_optional(&mut admin)
            .await?;
        if exists.is_none() {
            let quoted = format!("\"{}\"", db.replace('"', "\"\""));
            // A concurrent creator may win; that is fine.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
                .execute(&mut admin)
                .await;
        }
    }
    eventlog::PgEventStore::pool_options(settings.db_max_connections)
        .connect_with(opts)
        .await
        .context("connecting to PostgreSQL")
}
