//! The read models (`rm_*` tables) as a [`Projection`]: each batch is one PostgreSQL
//! transaction that locks the checkpoint row in `projection_checkpoints`, applies every event
//! after the checkpoint ([`crate::apply`]) and saves the new checkpoint.

use std::sync::Arc;

use eventlog::RecordedEvent;
use sqlx::{Connection, PgConnection, PgPool};

use crate::apply::apply_event;
use crate::batch;
use crate::projection::{Applied, ApplyBatchError, Batch, BoxFuture, Poison, Projection, Staged};

/// The projection of all read models (its name and checkpoint key).
pub const READ_MODELS: &str = "read_models";

/// Every read-model table (each starts with `rm_`).
pub const READ_MODEL_TABLES: &[&str] = &[
    "rm_users",
    "rm_rooms",
    "rm_members",
    "rm_messages",
    "rm_direct_pairs",
    "rm_mentions",
    "rm_room_mentions",
    "rm_receipts",
    "rm_notification_levels",
    "rm_private_receipts",
    "rm_room_bans",
    "rm_audit",
];

/// Every projection transaction commits without waiting for its WAL flush. The read models are
/// derived data: a PostgreSQL crash can lose the last few projection commits, but each one
/// loses its checkpoint with its rows (one transaction), and the projector then re-applies
/// from the checkpoint it finds (a delivery beyond it is a gap, filled from the log). The
/// event log's own commits stay synchronous.
const BEGIN_PROJECTION: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// The read models, in the PostgreSQL database `pool` (migrated with [`crate::migrate`]).
#[derive(Clone, Debug)]
pub struct ReadModels {
    pool: PgPool,
    /// `None` for the live read models (where the connection's `search_path` finds them);
    /// the schema of a blue/green copy otherwise ([`crate::read_models_copy`]), which holds
    /// its own tables and its own `projection_checkpoints`.
    schema: Option<Arc<str>>,
}

impl ReadModels {
    pub fn new(pool: PgPool) -> Self {
        ReadModels { pool, schema: None }
    }

    /// The copy of the read models in `schema` (made by [`crate::read_models_copy`]): every
    /// transaction sets its `search_path` to it, so the same statements write the copy.
    pub(crate) fn in_schema(pool: PgPool, schema: &str) -> Self {
        ReadModels {
            pool,
            schema: Some(schema.into()),
        }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Cancellation-safe ([`eventlog::pool::begin_with`]): a readiness check that times
    /// out, or a runner stopped, mid-`BEGIN` leaves no transaction open on the connection.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        match &self.schema {
            None => eventlog::pool::begin_with(&self.pool, BEGIN_PROJECTION).await,
            // The schema name is ours (a constant of read_models_copy), never input.
            Some(schema) => {
                eventlog::pool::begin_with(
                    &self.pool,
                    sqlx::AssertSqlSafe(format!(
                        "{BEGIN_PROJECTION}; SET LOCAL search_path = {schema}"
                    )),
                )
                .await
            }
        }
    }
}

impl Projection for ReadModels {
    fn name(&self) -> &str {
        READ_MODELS
    }

    fn checkpoint(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            let p: Option<i64> = sqlx::query_scalar(
                "SELECT position FROM projection_checkpoints WHERE projection = $1",
            )
            .bind(READ_MODELS)
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            Ok(p.unwrap_or(0))
        })
    }

    fn apply_batch<'a>(
        &'a self,
        batch: Batch<'a>,
    ) -> BoxFuture<'a, Result<Applied, ApplyBatchError>> {
        Box::pin(async move {
            // Fast first; a poison event aborts the transaction, and the batch is redone with a
            // savepoint per event to commit what comes before it.
            match self.try_batch(batch, false).await {
                Err(Failure::NeedsCareful) => {}
                other => return other.map_err(Failure::into_error),
            }
            self.try_batch(batch, true)
                .await
                .map_err(Failure::into_error)
        })
    }

    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.begin().await?;
            // Taking the checkpoint row lock first makes a running projector wait for the
            // reset instead of interleaving with it.
            lock_checkpoint(&mut tx, READ_MODELS).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "TRUNCATE {}",
                READ_MODEL_TABLES.join(", ")
            )))
            .execute(&mut *tx)
            .await?;
            // A new epoch: clients holding positions from before the rebuild resync.
            sqlx::query(
                "UPDATE projection_checkpoints SET position = 0, epoch = epoch + 1, \
                 updated_at = now() WHERE projection = $1",
            )
            .bind(READ_MODELS)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn stage(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Staged>>> {
        Box::pin(async move {
            anyhow::ensure!(
                self.schema.is_none(),
                "a copy of the read models cannot be rebuilt beside itself"
            );
            let staged = crate::read_models_copy::ReadModelsCopy::stage(&self.pool).await?;
            Ok(Box::new(staged) as Box<dyn Staged>)
        })
    }
}

/// Locks this projection's checkpoint row (creating it at 0) and returns its position.
async fn lock_checkpoint(conn: &mut PgConnection, projection: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) \
         ON CONFLICT (projection) DO UPDATE SET projection = EXCLUDED.projection \
         RETURNING position",
    )
    .bind(projection)
    .fetch_one(conn)
    .await
}

async fn save_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE projection = $1",
    )
    .bind(projection)
    .bind(position)
    .execute(conn)
    .await?;
    Ok(())
}

/// The checkpoint of `projection` in `projection_checkpoints` (0 when it has none).
pub async fn checkpoint(pool: &PgPool, projection: &str) -> Result<i64, sqlx::Error> {
    let p: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(projection)
            .fetch_optional(pool)
            .await?;
    Ok(p.unwrap_or(0))
}

enum Failure {
    /// An event is poison: redo the batch with a savepoint per event.
    NeedsCareful,
    Gap(i64),
    Other(anyhow::Error),
}

impl Failure {
    fn into_error(self) -> ApplyBatchError {
        match self {
            Failure::NeedsCareful => {
                ApplyBatchError::Failed(anyhow::anyhow!("poison event escaped careful mode"))
            }
            Failure::Gap(checkpoint) => ApplyBatchError::Gap { checkpoint },
            Failure::Other(e) => ApplyBatchError::Failed(e),
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Other(e.into())
    }
}

impl ReadModels {
    async fn try_batch(&self, batch: Batch<'_>, careful: bool) -> Result<Applied, Failure> {
        let mut tx = self.begin().await?;
        let start = lock_checkpoint(&mut tx, READ_MODELS).await?;
        let skipped = batch.events.partition_point(|e| e.position <= start);
        let todo = &batch.events[skipped..];
        let mut applied = Applied {
            checkpoint: start,
            skipped: u64::try_from(skipped).unwrap_or(u64::MAX),
            ..Applied::default()
        };
        if let Some(first) = todo.first()
            && first.position != start + 1
        {
            tx.rollback().await?;
            return Err(Failure::Gap(start));
        }
        apply_all(&mut tx, todo, batch.dead_lettered, careful, &mut applied).await?;
        if applied.checkpoint > start {
            save_checkpoint(&mut tx, READ_MODELS, applied.checkpoint).await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(applied)
    }
}

/// Applies `events` (contiguous, in position order), stepping over the dead-lettered ones. Fast
/// mode applies the whole batch with a few set-based statements ([`batch::apply_events`]: the
/// events grouped by kind, folded in memory where their order matters); any poison event fails
/// it. Careful mode goes event by event ([`apply_event`], the reference the fast mode must
/// equal) with a savepoint each, so a poison event is isolated, and stops there.
async fn apply_all(
    tx: &mut PgConnection,
    events: &[RecordedEvent],
    dead_lettered: &[i64],
    careful: bool,
    applied: &mut Applied,
) -> Result<(), Failure> {
    if !careful {
        let Some(last) = events.last() else {
            return Ok(());
        };
        match batch::apply_events(tx, events, dead_lettered).await {
            Ok(()) => {}
            Err(e) if e.is_poison() => return Err(Failure::NeedsCareful),
            Err(e) => return Err(Failure::Other(e.into())),
        }
        applied.applied += events.len() as u64;
        applied.checkpoint = last.position;
        return Ok(());
    }
    for ev in events {
        if dead_lettered.contains(&ev.position) {
            applied.applied += 1;
            applied.checkpoint = ev.position;
            continue;
        }
        apply_carefully(tx, ev, applied).await?;
        if applied.poison.is_some() {
            return Ok(());
        }
    }
    Ok(())
}

/// Applies one event under a savepoint: a poison event is rolled back to it and reported in
/// `applied.poison` (the caller stops there).
async fn apply_carefully(
    tx: &mut PgConnection,
    ev: &RecordedEvent,
    applied: &mut Applied,
) -> Result<(), Failure> {
    let mut sp = tx.begin().await?;
    match apply_event(&mut sp, ev).await {
        Ok(()) => sp.commit().await?,
        Err(e) if e.is_poison() => {
            sp.rollback().await?;
            applied.poison = Some(Poison {
                position: ev.position,
                reason: e.reason(),
            });
            return Ok(());
        }
        Err(e) => return Err(Failure::Other(e.into())),
    }
    applied.applied += 1;
    applied.checkpoint = ev.position;
    Ok(())
}
