//! Builds models from the event stream, exactly once in effect (docs/architecture.md D4), and
//! rebuilds them from the log. Projections are plug-ins (ADR 9): the framework is written once
//! and every projection gets it.
//!
//! - [`projection::Projection`]: the plug-in interface. A projection applies contiguous
//!   batches of events atomically with its own checkpoint, skips what its checkpoint already
//!   covers, reports poison events, and can reset itself.
//! - [`framework`]: what every projection shares: gaps and undecodable deliveries filled from
//!   the log (never skipped), dead letters in `dead_letters` (keyed by projection),
//!   [`framework::catch_up_from_log`] and [`framework::rebuild`].
//! - [`Projector`]: the live path of one projection, a durable JetStream pull consumer named
//!   after it; each batch is committed by the projection, then acked. [`run_all`] runs several.
//! - [`read_models::ReadModels`]: the read models (`rm_*` tables), the first projection: one
//!   PostgreSQL transaction per batch holding the checkpoint row lock, the changes
//!   ([`apply`]) and the new checkpoint.
//! - [`search_index::SearchIndex`]: the message search index (Tantivy or OpenSearch, the
//!   `search` crate), whose own commits hold its checkpoint.
//! - [`registry`]: the projections the `projector` binary and the single-node platform run;
//!   [`select`] picks some by name.
//! - [`configuration`]: the settings; [`startup`]: the command line (`projector run
//!   [--projection NAME]...`, `projector rebuild (--all | NAME...)`) and the process, with
//!   `/readyz` reporting every running projection's checkpoint and `/metrics`.
//! - `log` (private): the one module that reads the event log.
//! - `attention` and `moderation` (private): the read models that depend only on events
//!   (mentions, receipts, notification levels; bans and the administrators' audit trail),
//!   collected per batch beside the fold.
//! - [`oracle`]: row-by-row comparison of two read-model databases.

pub mod apply;
mod attention;
pub mod batch;
pub mod configuration;
mod consumer;
mod erasure;
pub mod framework;
mod log;
pub mod metrics;
mod moderation;
pub mod oracle;
pub mod progress;
pub mod projection;
pub mod read_models;
pub mod read_models_copy;
mod retention;
pub mod search_index;
pub mod startup;

use std::sync::Arc;

use sqlx::PgPool;

pub use consumer::{Outcome, Projector, ProjectorConfig, consumer_name, lag, run_all};
pub use framework::BatchReport;
pub use metrics::Metrics;
pub use projection::Projection;
pub use read_models::{READ_MODEL_TABLES, READ_MODELS, ReadModels};
pub use search_index::{SEARCH, SearchIndex};

/// Events per commit when reading from the log.
pub const LOG_BATCH: i64 = 1000;

/// Events per commit when a rebuild replays the log into a copy: bigger commits, fewer of
/// them (each is a transaction, or an index commit).
pub const REBUILD_BATCH: i64 = 10_000;

/// Runs the read-model migrations (also the framework's `dead_letters` and the read models'
/// `projection_checkpoints`). Other crates keep their own migrations in the same database, so
/// migrations applied but unknown here are ignored.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    eventlog::pool::migrate_retrying(&migrator, pool).await
}

/// Every projection this crate provides: the read models, stored in `pool` (the projector's
/// database), and the search index.
pub fn registry(pool: &PgPool, search: SearchIndex) -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(ReadModels::new(pool.clone())), Arc::new(search)]
}

/// The projections of `registered` named in `names`, in that order (all of them when `names`
/// is empty). An unknown name is an error that lists the known ones.
pub fn select(
    registered: Vec<Arc<dyn Projection>>,
    names: &[String],
) -> anyhow::Result<Vec<Arc<dyn Projection>>> {
    if names.is_empty() {
        return Ok(registered);
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            anyhow::ensure!(
                !names[..i].contains(name),
                "projection {name:?} named twice"
            );
            registered
                .iter()
                .find(|p| p.name() == name)
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> = registered.iter().map(|p| p.name()).collect();
                    anyhow::anyhow!("unknown projection {name:?}; known: {}", known.join(", "))
                })
        })
        .collect()
}

/// Catches the read models in `pool` up with the log (`log`) through the framework
/// ([`framework::catch_up_from_log`], 1000 events per transaction). Returns the number of
/// events applied (dead-lettered ones included).
pub async fn catch_up_from_log(pool: &PgPool, log: &PgPool) -> anyhow::Result<u64> {
    framework::catch_up_from_log(&ReadModels::new(pool.clone()), pool, log, LOG_BATCH).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn projections_are_selected_by_name_and_an_unknown_name_lists_the_known_ones() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("lazy pool");
        let registry = |pool: &PgPool| {
            use http_kit::settings::Layered as _;
            let settings = crate::configuration::Settings::from_defaults().expect("defaults");
            super::registry(pool, SearchIndex::from_settings(settings.search))
        };
        let names = |ps: Vec<Arc<dyn Projection>>| -> Vec<String> {
            ps.iter().map(|p| p.name().to_owned()).collect()
        };
        let all = select(registry(&pool), &[]).expect("all");
        assert_eq!(names(all), vec![READ_MODELS.to_owned(), SEARCH.to_owned()]);
        let one = select(registry(&pool), &[READ_MODELS.to_owned()]).expect("one");
        assert_eq!(names(one), vec![READ_MODELS.to_owned()]);
        let one = select(registry(&pool), &[SEARCH.to_owned()]).expect("search");
        assert_eq!(names(one), vec![SEARCH.to_owned()]);
        let err = select(registry(&pool), &["searches".to_owned()])
            .err()
            .expect("unknown");
        assert_eq!(
            err.to_string(),
            "unknown projection \"searches\"; known: read_models, search"
        );
        let twice = vec![READ_MODELS.to_owned(), READ_MODELS.to_owned()];
        assert!(select(registry(&pool), &twice).is_err());
    }
}
