//! Single-node mode (docs/architecture.md D10): the command API, the log → JetStream
//! relay, the projector and the query API in one process, on one port. The same
//! roles run as separate processes (`command-api`, `projector`, `query-api`) to scale.

pub mod command;
pub mod configuration;

pub use command::Command;
pub use configuration::Settings;

use anyhow::Context;
use axum::Router;
use http_kit::runtime::Background;
use http_kit::serve::{Application, Server};
use http_kit::service;
use std::sync::Arc;

/// Every role in one process: [`Application::run`] serves until its shutdown future
/// resolves, then stops the relay and the projector.
pub type Platform = Application<Roles>;

/// The state of the roles served.
#[derive(Clone)]
pub struct Roles {
    pub command: command_api::state::AppState,
    pub query: query_api::state::AppState,
    /// The projector's runtime, at a lower priority (ADR 26): lives as long as the platform.
    pub background: Arc<Background>,
}

/// Connects, migrates (log, credentials, read models, presence), binds.
pub async fn build(settings: Settings) -> anyhow::Result<Platform> {
    let (command, relay) = command_api::startup::build_state(settings.command).await?;
    projector::migrate(&command.pool)
        .await
        .context("read-model migrations")?;
    // The projector runs on a runtime of its own whose threads yield the cores to serving
    // (ADR 26); the index's writer is opened there, so its indexing threads inherit that.
    let background = Arc::new(
        Background::start(settings.background_nice).context("start the background runtime")?,
    );
    // One search index handle for the projection that writes it and the searches: with the
    // embedded index, a search sees each commit the moment it lands (a reader in another
    // process reloads when Tantivy's watcher notices, within half a second).
    let search_settings = settings.projector.search.clone();
    let search = background
        .handle()
        .spawn_blocking(move || search_settings.open_writer())
        .await
        .context("open the search index")?
        .context("open the search index")?;
    let query = query_api::startup::build_state_with(settings.query, search.clone()).await?;
    // Every registered projection, stored with the read models; the log is the command
    // side's database.
    let projector = projector::startup::AppState {
        pool: query.pool.clone(),
        nats: query.nats.clone(),
        stream_name: settings.projector.service.stream_name.clone(),
        metrics: projector::Metrics::new()?,
        projections: projector::registry(&query.pool, projector::SearchIndex::new(search)),
    };
    let projectors = projector::startup::runners(
        &projector.projections,
        &settings.projector,
        &query.pool,
        &command.pool,
        &projector.nats,
        &projector.metrics,
    );
    // One address serves the checks and metrics of every role, and one OpenAPI document.
    // The projector's own `postgres` and `nats` checks are the command and query sides'
    // here (NATS does not gate readiness: commands are durable in the log); its checkpoints
    // are checked as `projections`.
    let mut ops = command_api::startup::ops(&command).merge(query_api::startup::ops(&query));
    ops.readiness = ops.readiness.require(
        "projections",
        projector::startup::checkpoints(projector.projections.clone()),
    );
    ops.scrape = ops.scrape.merge(projector::startup::scrape(&projector));
    if let Some(doc) = &mut ops.openapi {
        doc.info.title = "chat".to_owned();
    }
    let api = Router::new()
        .merge(command_api::startup::api_routes(command.clone()))
        .merge(query_api::startup::api_routes(query.clone()));
    let mut server = query_api::startup::close_sockets_on_stop(
        Server::bind(&settings.listen, service::router(ops, api)).await?,
        &query,
    )
    .task("projector", {
        let background = background.handle();
        move |stop| async move {
            background
                .spawn(projector::run_all(projectors, stop))
                .await
                .context("the projector panicked")?
        }
    });
    if let Some(relay) = relay {
        server = server.task("relay", |stop| relay.run(stop));
    }
    Ok(Application::new(
        server,
        Roles {
            command,
            query,
            background,
        },
    ))
}
