//! A second projection, for the tests only: the number of messages sent in each room. It
//! shares nothing with the read models but the framework: its own table, and its own
//! checkpoint in the same transaction as its counts (never `projection_checkpoints`).

use std::collections::BTreeMap;

use eventlog::RecordedEvent;
use events::StoredEvent;
use events::ids::RoomId;
use events::room::RoomEvent;
use projector::projection::{
    Applied, ApplyBatchError, Batch, BoxFuture, Poison, Projection, Replay, Staged, Switched,
};
use sqlx::PgPool;
use uuid::Uuid;

/// Its name (dead letters, metrics; its consumer is `test-message-counts`).
pub const MESSAGE_COUNTS: &str = "test_message_counts";

pub struct MessageCounts {
    pool: PgPool,
    /// `test_message_counts` for the live projection; a blue/green copy has its own tables
    /// (`test_message_counts_next…`), swapped in by renaming.
    table: &'static str,
}

/// The tables of a blue/green copy of the message counts.
const NEXT: &str = "test_message_counts_next";

impl MessageCounts {
    /// Creates its tables in `pool` if they do not exist yet.
    pub async fn create(pool: &PgPool) -> MessageCounts {
        Self::create_tables(pool, MESSAGE_COUNTS)
            .await
            .expect("create the message counts");
        MessageCounts {
            pool: pool.clone(),
            table: MESSAGE_COUNTS,
        }
    }

    async fn create_tables(pool: &PgPool, table: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {table} ( \
               room_id UUID PRIMARY KEY, messages BIGINT NOT NULL); \
             CREATE TABLE IF NOT EXISTS {table}_checkpoint ( \
               one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), position BIGINT NOT NULL, \
               epoch BIGINT NOT NULL DEFAULT 1); \
             INSERT INTO {table}_checkpoint (position) VALUES (0) \
               ON CONFLICT DO NOTHING;"
        )))
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Its counts: room → messages.
    pub async fn counts(&self) -> BTreeMap<Uuid, i64> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT room_id, messages FROM {}",
            self.table
        )))
        .fetch_all(&self.pool)
        .await
        .expect("message counts")
        .into_iter()
        .collect()
    }

    /// The oracle, computed from the PostgreSQL log: `MessageSent` events per room, except
    /// those in this projection's dead letters.
    pub async fn expected(log: &PgPool) -> BTreeMap<Uuid, i64> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT stream_id, count(*) FROM events \
             WHERE stream_type = 'room' AND event_type = 'MessageSent' AND position NOT IN \
               (SELECT position FROM dead_letters WHERE projection = $1) \
             GROUP BY stream_id",
        )
        .bind(MESSAGE_COUNTS)
        .fetch_all(log)
        .await
        .expect("messages per room in the log");
        rows.into_iter()
            .map(|(stream, n)| (RoomId::from_stream_id(&stream).expect("room").0, n))
            .collect()
    }

    /// One transaction: lock the checkpoint, count the messages after it up to the first
    /// poison event, add the counts, save the checkpoint. `Err(checkpoint)` when the batch does
    /// not follow the checkpoint (nothing written).
    async fn apply(&self, batch: Batch<'_>) -> anyhow::Result<Result<Applied, i64>> {
        let mut tx = self.pool.begin().await?;
        let start: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT position FROM {}_checkpoint WHERE one FOR UPDATE",
            self.table
        )))
        .fetch_one(&mut *tx)
        .await?;
        let skipped = batch.events.partition_point(|e| e.position <= start);
        let todo = &batch.events[skipped..];
        if todo.first().is_some_and(|e| e.position != start + 1) {
            return Ok(Err(start));
        }
        let mut applied = Applied {
            checkpoint: start,
            skipped: u64::try_from(skipped)?,
            ..Applied::default()
        };
        let mut counts: BTreeMap<Uuid, i64> = BTreeMap::new();
        for ev in todo {
            if !batch.dead_lettered.contains(&ev.position) {
                match room_of_message(ev) {
                    Ok(Some(room)) => *counts.entry(room).or_default() += 1,
                    Ok(None) => {}
                    Err(reason) => {
                        applied.poison = Some(Poison {
                            position: ev.position,
                            reason,
                        });
                        break;
                    }
                }
            }
            applied.applied += 1;
            applied.checkpoint = ev.position;
        }
        if applied.checkpoint > start {
            let (rooms, ns): (Vec<Uuid>, Vec<i64>) = counts.into_iter().unzip();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {t} (room_id, messages) \
                 SELECT * FROM UNNEST($1::uuid[], $2::int8[]) \
                 ON CONFLICT (room_id) DO UPDATE \
                 SET messages = {t}.messages + EXCLUDED.messages",
                t = self.table
            )))
            .bind(rooms)
            .bind(ns)
            .execute(&mut *tx)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {}_checkpoint SET position = $1",
                self.table
            )))
            .bind(applied.checkpoint)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(Ok(applied))
    }
}

/// The room of a `MessageSent`, `None` for any other event; poison when a `MessageSent` does
/// not decode or is not in a room stream.
fn room_of_message(ev: &RecordedEvent) -> Result<Option<Uuid>, String> {
    if ev.event_type != "MessageSent" {
        return Ok(None);
    }
    let room = RoomId::from_stream_id(&ev.stream_id)
        .ok_or_else(|| format!("not a room stream: {}", ev.stream_id))?;
    RoomEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone())
        .map_err(|e| format!("cannot decode MessageSent: {e}"))?;
    Ok(Some(room.0))
}

impl Projection for MessageCounts {
    fn name(&self) -> &str {
        MESSAGE_COUNTS
    }

    fn checkpoint(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT position FROM {}_checkpoint",
                self.table
            )))
            .fetch_one(&self.pool)
            .await?)
        })
    }

    fn apply_batch<'a>(
        &'a self,
        batch: Batch<'a>,
    ) -> BoxFuture<'a, Result<Applied, ApplyBatchError>> {
        Box::pin(async move {
            match self.apply(batch).await? {
                Ok(applied) => Ok(applied),
                Err(checkpoint) => Err(ApplyBatchError::Gap { checkpoint }),
            }
        })
    }

    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "TRUNCATE {t}; UPDATE {t}_checkpoint SET position = 0;",
                t = self.table
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Blue/green with fresh tables beside the live ones, swapped in by renaming.
    fn stage(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Staged>>> {
        Box::pin(async move {
            anyhow::ensure!(self.table == MESSAGE_COUNTS, "a copy cannot be staged");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS {NEXT}, {NEXT}_checkpoint"
            )))
            .execute(&self.pool)
            .await?;
            Self::create_tables(&self.pool, NEXT).await?;
            Ok(Box::new(MessageCounts {
                pool: self.pool.clone(),
                table: NEXT,
            }) as Box<dyn Staged>)
        })
    }
}

impl Staged for MessageCounts {
    fn copy(&self) -> &dyn Projection {
        self
    }

    fn bulk_loaded(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(()) })
    }

    fn switch<'a>(self: Box<Self>, replay: &'a Replay) -> BoxFuture<'a, anyhow::Result<Switched>> {
        Box::pin(async move {
            replay.catch_up(&*self).await?;
            let mut tx = self.pool.begin().await?;
            // The live checkpoint row, held: the live runner waits at its next batch.
            let (live, epoch): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT position, epoch FROM {MESSAGE_COUNTS}_checkpoint WHERE one FOR UPDATE"
            )))
            .fetch_one(&mut *tx)
            .await?;
            replay.catch_up(&*self).await?;
            let checkpoint = self.checkpoint().await?;
            anyhow::ensure!(checkpoint >= live, "the copy is behind the live counts");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {NEXT}_checkpoint SET epoch = $1"
            )))
            .bind(epoch + 1)
            .execute(&mut *tx)
            .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TABLE {MESSAGE_COUNTS}, {MESSAGE_COUNTS}_checkpoint; \
                 ALTER TABLE {NEXT} RENAME TO {MESSAGE_COUNTS}; \
                 ALTER TABLE {NEXT}_checkpoint RENAME TO {MESSAGE_COUNTS}_checkpoint;"
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Switched {
                epoch: epoch + 1,
                checkpoint,
            })
        })
    }

    fn abandon(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS {NEXT}, {NEXT}_checkpoint"
            )))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }
}
