//! Builds models from the event stream, exactly once in effect (design.md decision 4), and
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
//! - [`registry`]: the projections the `projector` binary and the single-node platform run.
//! - [`log`]: the one module that reads the event log.
//! - [`oracle`]: row-by-row comparison of two read-model databases.

pub mod apply;
pub mod configuration;
mod consumer;
pub mod framework;
mod log;
pub mod metrics;
pub mod oracle;
pub mod projection;
pub mod read_models;
pub mod startup;

use std::sync::Arc;

use sqlx::PgPool;

pub use consumer::{Outcome, Projector, ProjectorConfig, consumer_name, lag, run_all};
pub use framework::BatchReport;
pub use metrics::Metrics;
pub use projection::Projection;
pub use read_models::{READ_MODEL_TABLES, READ_MODELS, ReadModels};

/// Events per commit when reading from the log.
pub const LOG_BATCH: i64 = 1000;

/// Runs the read-model migrations (also the framework's `dead_letters` and the read models'
/// `projection_checkpoints`). Other crates keep their own migrations in the same database, so
/// migrations applied but unknown here are ignored.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

/// Every projection this crate provides, stored in `pool` (the projector's database): the
/// read models, for now.
pub fn registry(pool: &PgPool) -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(ReadModels::new(pool.clone()))]
}

/// Catches the read models in `pool` up with the log (`log`) through the framework
/// ([`framework::catch_up_from_log`], 1000 events per transaction). Returns the number of
/// events applied (dead-lettered ones included).
pub async fn catch_up_from_log(pool: &PgPool, log: &PgPool) -> anyhow::Result<u64> {
    framework::catch_up_from_log(&ReadModels::new(pool.clone()), pool, log, LOG_BATCH).await
}
