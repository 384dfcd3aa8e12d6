//! The read models' blue/green copy (ADR 11): a rebuild fills a copy of every read-model table
//! in its own schema while the live tables keep serving, then swaps the copy in with one
//! transaction.
//!
//! - **Stage.** The schema [`COPY_SCHEMA`] is dropped (whatever an interrupted rebuild left)
//!   and created again with a copy of each live table: the same columns, defaults, checks,
//!   primary keys and unique constraints (under the same names), a `projection_checkpoints`
//!   of its own, and the views over them. Plain indexes are left out for now.
//! - **Bulk load.** The framework replays the log into it ([`ReadModels::in_schema`]: the
//!   same statements as the live projection, with the copy's schema first on the
//!   `search_path`); then [`Staged::bulk_loaded`] builds the plain indexes, in one pass each
//!   instead of row by row, and refreshes the planner statistics.
//! - **Switch.** The copy catches up with the log; then one transaction locks the live
//!   checkpoint row (the live projector waits at its next batch, nothing else does), catches
//!   the copy up with the events that arrived meanwhile, drops the live tables and views,
//!   moves the copy's into their schema, sets the live checkpoint to the copy's, bumps the
//!   epoch and notifies `chat_projection_epoch`. Readers see the old tables or the new ones,
//!   never a mix and never an empty one; their cached plans are invalidated by the drop and
//!   planned again against the new tables.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection, PgPool};

use crate::projection::{BoxFuture, Projection, Replay, Staged, Switched};
use crate::read_models::{READ_MODEL_TABLES, READ_MODELS, ReadModels};

/// The schema a rebuild of the read models fills. One at a time: the framework holds an
/// advisory lock per projection for the whole rebuild.
pub const COPY_SCHEMA: &str = "rm_rebuild";

/// The channel that announces a new epoch, with payload `<projection>:<epoch>`.
pub const EPOCH_CHANNEL: &str = "chat_projection_epoch";

/// Longest the switch waits for the live checkpoint row (the live projector commits its
/// batch first) before it gives up; the copy is kept and the rebuild can be run again.
const ROW_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one attempt waits to lock every live table (readers finish their statements
/// meanwhile, and new ones wait behind it): well under PostgreSQL's `deadlock_timeout` (1 s).
const TABLE_LOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// Attempts at locking the live tables before the switch gives up.
const SWITCH_ATTEMPTS: u32 = 100;

/// SQLSTATE `lock_not_available`: a `lock_timeout` expired.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// A copy of the read models in [`COPY_SCHEMA`], being filled.
pub(crate) struct ReadModelsCopy {
    copy: ReadModels,
    /// The schema of the live read models.
    live: String,
    /// `CREATE INDEX` statements for the copy, run by [`Staged::bulk_loaded`].
    deferred_indexes: Vec<String>,
}

/// `"name"`: an identifier quoted for SQL.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl ReadModelsCopy {
    /// Creates the empty copy beside the live read models in `pool`.
    pub(crate) async fn stage(pool: &PgPool) -> anyhow::Result<ReadModelsCopy> {
        let mut tx = eventlog::pool::begin(pool).await?;
        let live: String = sqlx::query_scalar(
            "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass('rm_messages')",
        )
        .fetch_optional(&mut *tx)
        .await?
        .context("the read models are not migrated (no rm_messages on the search_path)")?;
        let (q_live, q_copy) = (quote(&live), quote(COPY_SCHEMA));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {q_copy} CASCADE; CREATE SCHEMA {q_copy}"
        )))
        .execute(&mut *tx)
        .await
        .context("create the copy's schema")?;

        let mut deferred_indexes = Vec::new();
        let tables = READ_MODEL_TABLES
            .iter()
            .copied()
            .chain(std::iter::once("projection_checkpoints"));
        for table in tables {
            let q_table = quote(table);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {q_copy}.{q_table} (LIKE {q_live}.{q_table} INCLUDING DEFAULTS \
                 INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY \
                 INCLUDING STORAGE INCLUDING COMMENTS)"
            )))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("create the copy of {table}"))?;
            // Primary keys and unique constraints now, under their own names: statements
            // rely on them (ON CONFLICT) and they reject what the live tables reject.
            let constraints: Vec<(String, String)> = sqlx::query_as(
                "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = format('%I.%I', $1::text, $2::text)::regclass \
                 AND contype IN ('p', 'u', 'f', 'x') ORDER BY contype DESC, conname",
            )
            .bind(&live)
            .bind(table)
            .fetch_all(&mut *tx)
            .await?;
            for (name, def) in constraints {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE {q_copy}.{q_table} ADD CONSTRAINT {} {def}",
                    quote(&name)
                )))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("add constraint {name} to the copy of {table}"))?;
            }
            // Plain indexes after the bulk load: the same definition, on the copy.
            let indexes: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = format('%I.%I', $1::text, $2::text)::regclass \
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) \
                 ORDER BY c.relname",
            )
            .bind(&live)
            .bind(table)
            .fetch_all(&mut *tx)
            .await?;
            for (name, def) in indexes {
                let on_live = format!(" ON {}.{} ", live, table);
                let on_copy = format!(" ON {q_copy}.{q_table} ");
                anyhow::ensure!(
                    def.contains(&on_live),
                    "cannot move index {name} to the copy: unexpected definition {def}"
                );
                deferred_indexes.push(def.replacen(&on_live, &on_copy, 1));
            }
        }

        // Views over the read models (rm_unread), defined again over the copy's tables: the
        // definition read with only the live schema on the search_path names the tables
        // without a schema, and is created with only the copy's.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL search_path = {q_live}"
        )))
        .execute(&mut *tx)
        .await?;
        let views: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_viewdef(c.oid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'v' AND c.relname LIKE 'rm\\_%' \
             ORDER BY c.oid",
        )
        .bind(&live)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL search_path = {q_copy}"
        )))
        .execute(&mut *tx)
        .await?;
        for (name, def) in &views {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE VIEW {} AS {def}",
                quote(name)
            )))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("create the copy of view {name}"))?;
        }
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, position, epoch) VALUES ($1, 0, 0)",
        )
        .bind(READ_MODELS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ReadModelsCopy {
            copy: ReadModels::in_schema(pool.clone(), COPY_SCHEMA),
            live,
            deferred_indexes,
        })
    }

    /// Drops the copy's schema, with everything in it.
    async fn drop_copy(pool: &PgPool) -> anyhow::Result<()> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote(COPY_SCHEMA)
        )))
        .execute(pool)
        .await
        .context("drop the copy of the read models")?;
        Ok(())
    }

    /// The swap itself, in `tx`, which already holds the live checkpoint row: returns the new
    /// epoch.
    async fn swap(&self, tx: &mut PgConnection, checkpoint: i64) -> anyhow::Result<i64> {
        let (q_live, q_copy) = (quote(&self.live), quote(COPY_SCHEMA));
        let views = read_model_views(&mut *tx, COPY_SCHEMA).await?;
        let live_tables = READ_MODEL_TABLES
            .iter()
            .map(|t| format!("{q_live}.{}", quote(t)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = String::new();
        for view in &views {
            sql.push_str(&format!("DROP VIEW IF EXISTS {q_live}.{};\n", quote(view)));
        }
        // CASCADE would drop anything else built on them silently: refuse instead.
        sql.push_str(&format!("DROP TABLE {live_tables} RESTRICT;\n"));
        for table in READ_MODEL_TABLES {
            sql.push_str(&format!(
                "ALTER TABLE {q_copy}.{} SET SCHEMA {q_live};\n",
                quote(table)
            ));
        }
        for view in &views {
            sql.push_str(&format!(
                "ALTER VIEW {q_copy}.{} SET SCHEMA {q_live};\n",
                quote(view)
            ));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .context("swap the copy in")?;
        let epoch: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "UPDATE {q_live}.projection_checkpoints SET position = $2, epoch = epoch + 1, \
             updated_at = now() WHERE projection = $1 RETURNING epoch"
        )))
        .bind(READ_MODELS)
        .bind(checkpoint)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {q_copy} CASCADE")))
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EPOCH_CHANNEL)
            .bind(format!("{READ_MODELS}:{epoch}"))
            .execute(&mut *tx)
            .await?;
        Ok(epoch)
    }
}

impl ReadModelsCopy {
    /// One attempt at the switch: `None` when the live tables could not all be locked within
    /// [`TABLE_LOCK_TIMEOUT`] (nothing changed; try again).
    async fn try_switch(&self, replay: &Replay) -> anyhow::Result<Option<Switched>> {
        let pool = self.copy.pool().clone();
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL lock_timeout = '{}ms'",
            ROW_LOCK_TIMEOUT.as_millis()
        )))
        .execute(&mut *tx)
        .await?;
        // The live projector takes this row first in each batch: from here on it waits, and
        // its checkpoint stays where it is.
        let live: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {}.projection_checkpoints (projection, position) VALUES ($1, 0) \
             ON CONFLICT (projection) DO UPDATE SET projection = EXCLUDED.projection \
             RETURNING position",
            quote(&self.live)
        )))
        .bind(READ_MODELS)
        .fetch_one(&mut *tx)
        .await
        .context("lock the live checkpoint")?;
        // The rest, on other connections, while the live projection holds still.
        replay.catch_up(&self.copy).await?;
        let checkpoint = self.copy.checkpoint().await?;
        anyhow::ensure!(
            checkpoint >= live,
            "the copy reached position {checkpoint}, behind the live read models ({live})"
        );
        // Every live table and view at once, or none: a reader holds its tables from the
        // start of its statement and takes them in its own order, so waiting long could close
        // a cycle with one (a deadlock, which PostgreSQL breaks by failing the reader after
        // deadlock_timeout). Giving up well before that and trying again fails nobody.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL lock_timeout = '{}ms'",
            TABLE_LOCK_TIMEOUT.as_millis()
        )))
        .execute(&mut *tx)
        .await?;
        let mut relations: Vec<String> = READ_MODEL_TABLES
            .iter()
            .map(|t| format!("{}.{}", quote(&self.live), quote(t)))
            .collect();
        let views = read_model_views(&mut tx, &self.live).await?;
        relations.extend(
            views
                .iter()
                .map(|v| format!("{}.{}", quote(&self.live), quote(v))),
        );
        let locked = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            relations.join(", ")
        )))
        .execute(&mut *tx)
        .await;
        match locked {
            Ok(_) => {}
            Err(e)
                if e.as_database_error().and_then(|d| d.code()).as_deref()
                    == Some(LOCK_NOT_AVAILABLE) =>
            {
                tx.rollback().await?;
                tracing::debug!("read models busy; the switch tries again");
                return Ok(None);
            }
            Err(e) => return Err(anyhow::Error::from(e).context("lock the live read models")),
        }
        let epoch = self.swap(&mut tx, checkpoint).await?;
        tx.commit().await.context("commit the switch")?;
        Ok(Some(Switched { epoch, checkpoint }))
    }
}

/// The names of the read-model views (`rm_*`) in `schema`, in creation order.
async fn read_model_views(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'v' AND c.relname LIKE 'rm\\_%' ORDER BY c.oid",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
}

/// A pause of 0..`max` ms, from the clock's low bits: enough to keep two waiters apart.
fn rand_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) % max.max(1)
}

impl Staged for ReadModelsCopy {
    fn copy(&self) -> &dyn Projection {
        &self.copy
    }

    fn bulk_loaded(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let pool = self.copy.pool();
            for def in &self.deferred_indexes {
                sqlx::raw_sql(sqlx::AssertSqlSafe(def.clone()))
                    .execute(pool)
                    .await
                    .with_context(|| format!("build an index of the copy: {def}"))?;
            }
            let tables = READ_MODEL_TABLES
                .iter()
                .map(|t| format!("{}.{}", quote(COPY_SCHEMA), quote(t)))
                .collect::<Vec<_>>()
                .join(", ");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {tables}")))
                .execute(pool)
                .await
                .context("analyze the copy")?;
            Ok(())
        })
    }

    fn switch<'a>(self: Box<Self>, replay: &'a Replay) -> BoxFuture<'a, anyhow::Result<Switched>> {
        Box::pin(async move {
            // Most of the way without holding anything.
            replay.catch_up(&self.copy).await?;
            let mut attempt = 0u32;
            loop {
                match self.try_switch(replay).await? {
                    Some(switched) => return Ok(switched),
                    None if attempt < SWITCH_ATTEMPTS => {
                        attempt += 1;
                        let pause = 20 + u64::from(attempt) * 10 + rand_ms(40);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    None => anyhow::bail!(
                        "the read models stayed busy: no switch in {SWITCH_ATTEMPTS} attempts \
                         (the copy is kept; run the rebuild again)"
                    ),
                }
            }
        })
    }

    fn abandon(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { ReadModelsCopy::drop_copy(self.copy.pool()).await })
    }
}
