//! Building the query side separately from serving it, so tests (and the
//! single-node platform) run the same router.

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::Live;
use anyhow::Context;
use axum::Router;
use http_kit::auth::JwtKeys;
use http_kit::health::{self, Readiness};
use http_kit::metrics::Scrape;
use http_kit::secret::SecretUrl;
use http_kit::serve::Server;
use http_kit::service::{self, Ops};
use search::SearchBackend;
use sqlx::PgPool;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

/// The query routes (REST and WebSocket) with their state and the web client's files
/// (`web_dir`), without health or metrics — the single-node platform merges these beside
/// the command routes.
pub fn api_routes(state: AppState) -> Router {
    let limits = state.settings.limits.clone();
    // The WebSocket route is outside the timeout: a socket lives for hours. A read that met
    // a stale database connection runs once more, within the same timeout.
    let rest = service::timeout(
        crate::routes::router().layer(axum::middleware::from_fn(service::retry_broken_reads)),
        &limits,
    );
    // Outermost on the REST reads, so every answer of theirs (an error, a timeout, a refused
    // body, a panic's 500) says which build of the read models it comes from.
    let rest = service::limit(rest, &limits).layer(axum::middleware::from_fn_with_state(
        state.epoch.clone(),
        crate::epoch::stamp,
    ));
    let web = http_kit::web::client_or_hint(&state.settings.web_dir);
    rest.merge(service::limit(crate::ws::router(), &limits))
        .with_state(state)
        .merge(web)
}

/// Health, readiness (the read models can be queried; NATS, which the live feed needs, and
/// the search index with the position its searches see, are shown), metrics and the OpenAPI
/// document.
pub fn ops(state: &AppState) -> Ops {
    let readiness = Readiness::new()
        .require(
            "read_models",
            health::postgres(
                state.pool.clone(),
                "SELECT position FROM projection_checkpoints LIMIT 1",
            ),
        )
        .report("nats", health::nats(Some(state.nats.clone())))
        .report("search", {
            // Shown, not required: without its index only search is down.
            let search = state.search.clone();
            move || {
                let search = search.clone();
                async move { Ok::<_, anyhow::Error>(search.visible_position(0).await?) }
            }
        });
    let (hub, metrics) = (state.live.hub().clone(), state.metrics.clone());
    let scrape = Scrape::new(state.metrics.registry.clone()).sample(move || {
        metrics
            .ws_subscriptions
            .set(i64::try_from(hub.subscription_count()).unwrap_or(i64::MAX));
        metrics
            .ws_users
            .set(i64::try_from(hub.user_count()).unwrap_or(i64::MAX));
        std::future::ready(())
    });
    Ops::new(readiness, scrape).openapi(crate::routes::openapi())
}

/// Every route of the query side, served alone.
pub fn router(state: AppState) -> Router {
    service::router(ops(&state), api_routes(state))
}

/// Builds the state: pools, migrations, NATS, the read models' epoch, the live hub, and a
/// reader of the search index its settings name.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let search_settings = settings.search.clone();
    let search = tokio::task::spawn_blocking(move || search_settings.open_reader())
        .await
        .context("open the search index")?
        .context("open the search index")?;
    build_state_with(settings, search).await
}

/// [`build_state`] searching through `search` (the single node passes the index its search
/// projection writes).
pub async fn build_state_with(
    settings: Settings,
    search: Arc<dyn SearchBackend>,
) -> anyhow::Result<AppState> {
    let server = crate::routes::server::ServerInfo::from_settings(&settings)
        .context("APP_RETENTION_DAYS must be 0 (for ever) or 1 to 36500")?;
    let db = &settings.service;
    let pool = connect(&db.database_url, db.db_max_connections, "APP_DATABASE_URL").await?;
    let log_pool = if db.log_database_url() == &db.database_url {
        pool.clone()
    } else {
        connect(
            db.log_database_url(),
            db.db_max_connections,
            "APP_LOG_DATABASE_URL",
        )
        .await?
    };
    migrate(&pool).await.context("query-api migrations")?;
    let blobs = settings
        .blobs
        .open(&settings.search.data_dir.join("blobs"))
        .context("open the attachments' blob storage")?;
    let jwt = JwtKeys::new(&settings.tokens.auth_config())
        .context("APP_JWT_SECRET must be at least 32 bytes")?;
    let nats = http_kit::nats::connect(settings.service.nats_url.expose_secret())
        .await
        .context("connecting to NATS")?;
    let metrics = Metrics::new()?;
    let epoch =
        crate::epoch::watch(pool.clone(), Duration::from_millis(settings.epoch_poll_ms)).await?;
    wait_for_log_schema(&log_pool).await?;
    let settings = Arc::new(settings);
    let live = Live::start(
        settings.clone(),
        pool.clone(),
        log_pool.clone(),
        nats.clone(),
        metrics.clone(),
        epoch.clone(),
    )
    .await?;
    follow_deactivations(&pool, &jwt, &nats, &live, &settings.service.subject_prefix).await;
    Ok(AppState {
        pool,
        log_pool,
        jwt,
        nats,
        live,
        metrics,
        search,
        blobs,
        ws_frames: Arc::new(settings.limits.rate.ws_frames()),
        server: Arc::new(server),
        settings,
        epoch,
    })
}

/// How long a node waits for command-api to create the log's tables in a new database.
const LOG_SCHEMA_WAIT: Duration = Duration::from_secs(120);

/// Waits until the log's tables exist: in a database just created, command-api may still be
/// migrating it (the read roles start before it, and wait; see platform/tests/startup_order.rs).
async fn wait_for_log_schema(log_pool: &PgPool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + LOG_SCHEMA_WAIT;
    loop {
        match sqlx::query_scalar::<_, i64>("SELECT position FROM log_head")
            .fetch_one(log_pool)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01")
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::info!("waiting for command-api to create the event log's tables");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(anyhow::Error::from(e).context("reading the event log's head")),
        }
    }
}

/// Keeps the refused tokens current (deactivated accounts in the read models, and notices
/// from command-api: http_kit::revocation), and closes a deactivated user's sockets.
async fn follow_deactivations(
    pool: &PgPool,
    jwt: &JwtKeys,
    nats: &async_nats::Client,
    live: &Live,
    prefix: &str,
) {
    let subscription = nats
        .subscribe(http_kit::revocation::subject(prefix))
        .await
        .ok();
    let pool = pool.clone();
    let load = move || {
        let pool = pool.clone();
        async move {
            let users: Vec<uuid::Uuid> =
                sqlx::query_scalar("SELECT user_id FROM rm_users WHERE deactivated")
                    .fetch_all(&pool)
                    .await?;
            Ok(users)
        }
    };
    let live = live.clone();
    tokio::spawn(http_kit::revocation::follow(
        jwt.clone(),
        subscription,
        load,
        // A notice may be of an erasure: the user's keys are read again when next needed.
        move |user| {
            live.close_user(events::UserId(user));
            live.keyring().invalidate(user);
        },
    ));
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations");
    m.set_ignore_missing(true);
    eventlog::pool::migrate_retrying(&m, pool).await
}

/// Waits while the database is not there yet (`eventlog::pool::connect_waiting`).
async fn connect(url: &SecretUrl, max: u32, what: &str) -> anyhow::Result<PgPool> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url.expose_secret())
        .with_context(|| format!("{what} is not a valid PostgreSQL URL"))?;
    eventlog::pool::connect_waiting(eventlog::PgEventStore::pool_options(max), options, what)
        .await
        .with_context(|| format!("connecting to PostgreSQL ({what})"))
}

/// The query side, built: `state` and the server that serves it.
pub type Application = http_kit::serve::Application<AppState>;

/// Connects, migrates, binds. Nothing is served until [`Application::run`].
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let listen = settings.service.listen.clone();
    let state = build_state(settings).await?;
    let server = close_sockets_on_stop(Server::bind(&listen, router(state.clone())).await?, &state);
    Ok(Application::new(server, state))
}

/// How long the sockets get to close once serving has ended.
pub const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// `server` closing every WebSocket with 1001 going-away when it stops (SIGTERM), after
/// the in-flight requests (`ws::Live::close_all`).
pub fn close_sockets_on_stop(server: Server, state: &AppState) -> Server {
    let live = state.live.clone();
    server.task("close sockets", move |stop| async move {
        stop.await;
        live.close_all(SOCKETS_CLOSE_WITHIN).await;
        Ok(())
    })
}
