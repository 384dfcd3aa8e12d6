//! Building the application separately from serving it, so tests run the same
//! app on port 0 and learn the bound address.

use crate::attachments::Attachments;
use crate::auth::{JwtKeys, PasswordHasher};
use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::rooms::RoomCommands;
use crate::routes;
use crate::state::{AppState, Shared};
use anyhow::Context;
use axum::Router;
use axum::routing::{delete, get, post, put};
use eventlog::relay::{Relay, RelayConfig};
use eventlog::{GroupCommitConfig, PgEventStore, Recent};
use http_kit::health::{self, Readiness};
use http_kit::metrics::Scrape;
use http_kit::serve::Server;
use http_kit::service::{self, Ops};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use utoipa::OpenApi;

/// The command routes with their state and layers, without health, metrics or a
/// fallback — the single-node platform merges these beside the query routes.
pub fn api_routes(state: AppState) -> Router {
    let limits = state.settings.limits.clone();
    let routes = Router::new()
        .route("/v1/auth/register", post(routes::auth::register))
        .route("/v1/auth/login", post(routes::auth::login))
        .route("/v1/auth/refresh", post(routes::auth::refresh))
        .route("/v1/auth/logout", post(routes::auth::logout))
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
        .route("/v1/rooms/{room_id}/bans", post(routes::bans::ban))
        .route(
            "/v1/rooms/{room_id}/bans/{user_id}",
            delete(routes::bans::unban),
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
            "/v1/rooms/{room_id}/notifications",
            put(routes::notifications::set_notification_level),
        )
        .route(
            "/v1/rooms/{room_id}/retention",
            put(routes::retention::set_retention),
        )
        .route("/v1/me/read-receipts", put(routes::me::set_read_receipts))
        .route(
            "/v1/me/profile",
            axum::routing::patch(routes::me::update_profile),
        )
        .route("/v1/me/avatar", delete(routes::avatars::remove_avatar))
        .route("/v1/me/sessions", get(routes::sessions::list))
        .route(
            "/v1/me/sessions/{session_id}",
            delete(routes::sessions::end),
        )
        .route("/v1/me/password", post(routes::sessions::change_password))
        .route("/v1/auth/oidc", get(routes::oidc::info))
        .route(
            "/v1/admin/users/{user_id}/deactivate",
            post(routes::admin::deactivate),
        )
        .route(
            "/v1/admin/users/{user_id}/erase",
            post(routes::erasure::erase_user),
        )
        .route(
            "/v1/admin/users/{user_id}/rotate-key",
            post(routes::erasure::rotate_key),
        )
        .route("/v1/me/erase", post(routes::erasure::erase_me))
        .route(
            "/v1/admin/rooms/{room_id}/members/{user_id}/role",
            put(routes::admin::change_role),
        )
        .route(
            "/v1/admin/rooms/{room_id}/messages/{message_id}",
            delete(routes::admin::delete_message),
        )
        .route("/v1/admin/rooms/{room_id}/bans", post(routes::admin::ban))
        .route(
            "/v1/admin/rooms/{room_id}/bans/{user_id}",
            delete(routes::admin::unban),
        )
        .route("/v1/auth/oidc/start", get(routes::oidc::start))
        .route("/v1/auth/oidc/callback", get(routes::oidc::callback))
        .route(
            "/v1/rooms/{room_id}/typing",
            post(routes::ephemeral::typing),
        )
        .route(
            "/v1/rooms/{room_id}/ephemeral",
            post(routes::ephemeral::ephemeral),
        );
    // Uploads stream for as long as the client sends (a stalled one is ended by the body's
    // chunk timeout), so they are outside the per-request timeout.
    let uploads = Router::new()
        .route(
            "/v1/rooms/{room_id}/attachments",
            post(routes::attachments::upload),
        )
        .route("/v1/me/avatar", put(routes::avatars::set_avatar));
    service::limit(service::timeout(routes, &limits).merge(uploads), &limits).with_state(state)
}

/// Health, readiness (PostgreSQL answers; NATS is shown but does not gate it: commands
/// are durable in the log and relayed when it returns), metrics and the OpenAPI document.
pub fn ops(state: &AppState) -> Ops {
    let readiness = Readiness::new()
        .require("postgres", health::postgres(state.pool.clone(), "SELECT 1"))
        .report("nats", health::nats(state.nats.clone()));
    let st = state.clone();
    let scrape = Scrape::new(state.metrics.registry.clone()).sample(move || {
        st.metrics.room_actors.set(st.rooms.active_rooms() as i64);
        let st = st.clone();
        async move { sample_relay_lag(&st).await }
    });
    Ops::new(readiness, scrape).openapi(routes::health::ApiDoc::openapi())
}

/// `chat_log_head_position` and `chat_relay_lag_events` (log head − stream last sequence).
async fn sample_relay_lag(st: &AppState) {
    let Ok(head) = eventlog::EventStore::head_position(&st.store).await else {
        return;
    };
    st.metrics.log_head.set(head);
    let Some(nats) = &st.nats else { return };
    let js = async_nats::jetstream::new(nats.clone());
    let last = async {
        let mut stream = js.get_stream(&st.settings.service.stream_name).await.ok()?;
        let info = stream.info().await.ok()?;
        i64::try_from(info.state.last_sequence).ok()
    }
    .await;
    if let Some(last) = last {
        st.metrics.relay_lag.set((head - last).max(0));
    }
}

/// Every route of the command side, served alone (tests call it without a socket).
pub fn router(state: AppState) -> Router {
    service::router(ops(&state), api_routes(state))
}

/// The command side, built: `state` and the server that serves it.
pub type Application = http_kit::serve::Application<AppState>;

/// Connects, migrates, binds. Nothing is served until [`Application::run`], which
/// serves until its shutdown future resolves, then drains in-flight requests and stops
/// the relay.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let (state, relay) = build_state(settings.clone()).await?;
    let mut server = Server::bind(&settings.service.listen, router(state.clone())).await?;
    if let Some(relay) = relay {
        server = server.task("relay", |stop| relay.run(stop));
    }
    Ok(Application::new(server, state))
}

/// Connects, migrates and wires the command side; the relay is returned to be run
/// by whoever serves (a [`Server::task`]).
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
    let nats = http_kit::nats::connect(settings.service.nats_url.expose_secret())
        .await
        .ok();
    let relay = match (&nats, settings.relay_enabled) {
        (Some(client), true) => Some(
            Relay::new(
                pool.clone(),
                client.clone(),
                RelayConfig {
                    stream_name: settings.service.stream_name.clone(),
                    subject_prefix: settings.service.subject_prefix.clone(),
                    ..RelayConfig::default()
                },
            )
            .with_recent(recent),
        ),
        _ => None,
    };
    let blobs = settings
        .blobs
        .open(&settings.data_dir.join("blobs"))
        .context("open the attachments' blob storage")?;
    let avatars = crate::avatars::Avatars::new(blobs.clone());
    let attachments = Attachments::new(pool.clone(), blobs, settings.blobs.clone());
    let keyring = Arc::new(vault::Keyring::new(
        pool.clone(),
        settings.seal_personal_data,
    ));
    let state = AppState::new(Shared {
        pool: pool.clone(),
        rooms: RoomCommands::new(store.clone(), keyring.clone())
            .counting_reloads(metrics.room_reloads.clone()),
        keyring,
        store,
        hasher: PasswordHasher::new(&auth),
        jwt,
        refresh_ttl: auth.refresh_ttl,
        metrics,
        nats,
        settings: Arc::new(settings.clone()),
        limits: crate::rate_limits::RateLimits::new(&settings.limits.rate),
        attachments: attachments.clone(),
        avatars,
        oidc: if settings.oidc.enabled() {
            Some(Arc::new(
                crate::oidc::Oidc::new(settings.oidc.clone()).context("single sign-on")?,
            ))
        } else {
            None
        },
    });
    tokio::spawn(attachments.collect_forever());
    let default_retention = settings
        .default_retention()
        .context("APP_RETENTION_DAYS must be 0 (for ever) or 1 to 36500")?;
    tokio::spawn(crate::retention::run_forever(
        state.clone(),
        default_retention,
    ));
    follow_deactivations(&state).await;
    Ok((state, relay))
}

/// Keeps the refused tokens current: deactivated accounts from the credentials table, and
/// the notices of other replicas (http_kit::revocation).
async fn follow_deactivations(state: &AppState) {
    let subscription = match &state.nats {
        Some(nats) => nats
            .subscribe(http_kit::revocation::subject(
                &state.settings.service.subject_prefix,
            ))
            .await
            .ok(),
        None => None,
    };
    let pool = state.pool.clone();
    let load = move || {
        let pool = pool.clone();
        async move {
            let users: Vec<uuid::Uuid> = sqlx::query_scalar(
                "SELECT user_id FROM credentials WHERE deactivated_at IS NOT NULL",
            )
            .fetch_all(&pool)
            .await?;
            Ok(users)
        }
    };
    let keyring = state.keyring.clone();
    tokio::spawn(http_kit::revocation::follow(
        state.jwt.clone(),
        subscription,
        load,
        // The notice may be of an erasure: the user's keys are read again when next needed.
        move |user| keyring.invalidate(user),
    ));
}

pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut m = sqlx::migrate!("./migrations");
    m.set_ignore_missing(true);
    eventlog::pool::migrate_retrying(&m, pool).await?;
    vault::migrate(pool).await
}

async fn connect_db(settings: &Settings) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(settings.service.database_url.expose_secret())
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
    eventlog::PgEventStore::pool_options(settings.service.db_max_connections)
        .connect_with(opts)
        .await
        .context("connecting to PostgreSQL")
}
