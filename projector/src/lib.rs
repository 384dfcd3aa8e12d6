//! Builds the read models from the event stream, exactly once in effect (design.md decision 4),
//! and rebuilds them from the log.
//!
//! - [`apply::apply_event`]: the projection logic, one event.
//! - [`Projector`]: the live path, a durable JetStream pull consumer; batches are applied in one
//!   PostgreSQL transaction together with the checkpoint, then acked.
//! - [`catch_up_from_log`] / [`rebuild`]: the same logic fed straight from the PostgreSQL log.
//! - [`log`]: the one module that reads the event log.
//! - [`oracle`]: row-by-row comparison of two read-model databases.

pub mod apply;
pub mod configuration;
mod consumer;
pub mod engine;
mod log;
pub mod metrics;
pub mod oracle;
pub mod startup;

use std::time::Instant;

use sqlx::PgPool;

pub use consumer::{Outcome, Projector, ProjectorConfig, lag};
pub use engine::{BatchReport, checkpoint};
pub use metrics::Metrics;

/// The projection of all read models (its checkpoint name).
pub const READ_MODELS: &str = "read_models";

/// Every read-model table (each starts with `rm_`).
pub const READ_MODEL_TABLES: &[&str] = &[
    "rm_users",
    "rm_rooms",
    "rm_members",
    "rm_messages",
    "rm_direct_pairs",
];

/// Events per transaction when reading from the log.
const LOG_BATCH: i64 = 1000;

/// Runs the read-model migrations. Other crates keep their own migrations in the same database,
/// so migrations applied but unknown here are ignored.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}

/// Applies every event after the checkpoint, read directly from the PostgreSQL log (`log`), in
/// batches of 1000 (one transaction per batch, checkpoint in the same transaction). Returns the
/// number of events applied (dead-lettered ones included).
pub async fn catch_up_from_log(pool: &PgPool, log: &PgPool) -> anyhow::Result<u64> {
    engine::catch_up(pool, log, READ_MODELS, LOG_BATCH).await
}

/// Empties every read model, this projection's dead letters and its checkpoint (bumping its
/// epoch) in one transaction, then replays the whole log with [`catch_up_from_log`].
pub async fn rebuild(pool: &PgPool, log: &PgPool) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    // Taking the checkpoint row lock first makes a running projector wait for the rebuild's
    // reset instead of interleaving with it.
    engine::lock_checkpoint(&mut tx, READ_MODELS).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "TRUNCATE {}",
        READ_MODEL_TABLES.join(", ")
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM dead_letters WHERE projection = $1")
        .bind(READ_MODELS)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE projection_checkpoints SET position = 0, epoch = epoch + 1, updated_at = now() \
         WHERE projection = $1",
    )
    .bind(READ_MODELS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let started = Instant::now();
    let n = catch_up_from_log(pool, log).await?;
    tracing::info!(
        events = n,
        seconds = started.elapsed().as_secs_f64(),
        "rebuilt read models"
    );
    Ok(n)
}
