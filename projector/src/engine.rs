//! Applying a batch exactly once in effect: one transaction holds the checkpoint row lock, the
//! read-model changes of every event after the checkpoint, the dead letters and the new
//! checkpoint. Whatever delivered the events (JetStream or the log), positions at or below the
//! checkpoint are duplicates and positions beyond `checkpoint + 1` are filled from the log first.

use anyhow::Context as _;
use eventlog::RecordedEvent;
use sqlx::{Connection, PgConnection, PgPool};

use std::borrow::Cow;

use crate::apply::{ApplyError, SentRow, apply_event, apply_message_run, as_message_sent};
use crate::log;

/// Events read from the log per query when filling a gap.
const LOG_CHUNK: i64 = 1000;

/// What one committed batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Events applied (including dead-lettered ones: the checkpoint moved past them).
    pub applied: u64,
    /// Of those, events that went to `dead_letters`.
    pub dead_lettered: u64,
    /// Of those, events read from the log because the transport skipped them.
    pub from_log: u64,
    /// Delivered events at or below the checkpoint, skipped.
    pub duplicates: u64,
    /// The checkpoint after the batch.
    pub checkpoint: i64,
}

/// Every projection transaction commits without waiting for its WAL flush. The read models are
/// derived data: a PostgreSQL crash can lose the last few projection commits, but each one
/// loses its checkpoint with its rows (one transaction), and the projector then re-applies
/// from the checkpoint it finds (a delivery beyond it is a gap, filled from the log). The
/// event log's own commits stay synchronous.
const BEGIN_PROJECTION: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// Locks this projection's checkpoint row (creating it at 0) and returns its position.
pub(crate) async fn lock_checkpoint(
    conn: &mut PgConnection,
    projection: &str,
) -> Result<i64, sqlx::Error> {
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

/// The checkpoint of `projection` (0 when it has none).
pub async fn checkpoint(pool: &PgPool, projection: &str) -> Result<i64, sqlx::Error> {
    let p: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(projection)
            .fetch_optional(pool)
            .await?;
    Ok(p.unwrap_or(0))
}

/// A delivered event: its position (the stream sequence) and, when the payload decoded and
/// agreed with that position, the event. `None` means "read it from the log".
pub(crate) type Delivered = (i64, Option<RecordedEvent>);

enum Failure {
    /// An event is poison: redo the batch with a savepoint per event.
    NeedsCareful,
    Other(anyhow::Error),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Other(e.into())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// Commits one batch built from `delivered` (any order, duplicates allowed). Returns `None`
/// when nothing was beyond the checkpoint (nothing written).
pub(crate) async fn commit_delivered(
    pool: &PgPool,
    log: &PgPool,
    projection: &str,
    delivered: &[Delivered],
) -> anyhow::Result<BatchReport> {
    let mut sorted: Vec<&Delivered> = delivered.iter().collect();
    sorted.sort_by_key(|d| d.0);
    sorted.dedup_by_key(|d| d.0);
    let mut careful = false;
    loop {
        match try_batch(pool, log, projection, &sorted, careful).await {
            Ok(report) => return Ok(report),
            Err(Failure::NeedsCareful) if !careful => careful = true,
            Err(Failure::NeedsCareful) => anyhow::bail!("poison event escaped careful mode"),
            Err(Failure::Other(e)) => return Err(e),
        }
    }
}

async fn try_batch(
    pool: &PgPool,
    log: &PgPool,
    projection: &str,
    sorted: &[&Delivered],
    careful: bool,
) -> Result<BatchReport, Failure> {
    let mut tx = pool.begin_with(BEGIN_PROJECTION).await?;
    let start = lock_checkpoint(&mut tx, projection).await?;
    let mut report = BatchReport {
        checkpoint: start,
        ..BatchReport::default()
    };
    // What to apply, in position order: the deliveries beyond the checkpoint, with any gap
    // before one of them filled from the log.
    let mut todo: Vec<Cow<'_, RecordedEvent>> = Vec::with_capacity(sorted.len());
    let mut next = start;
    for (position, event) in sorted {
        let position = *position;
        if position <= next {
            report.duplicates += 1;
            continue;
        }
        // A gap: the transport skipped events (purged, max_deliver, a lost stream). Never skip:
        // read them from the log, the source of truth, and apply them first.
        while next + 1 < position {
            let want = (position - 1 - next).min(LOG_CHUNK);
            let missing = log::read_after(log, next, want)
                .await
                .context("read a gap from the log")?;
            if missing.is_empty() {
                return Err(Failure::Other(anyhow::anyhow!(
                    "gap after position {next}: the log does not have it yet"
                )));
            }
            for ev in missing {
                next = ev.position;
                report.from_log += 1;
                todo.push(Cow::Owned(ev));
            }
        }
        match event {
            Some(ev) => todo.push(Cow::Borrowed(ev)),
            None => {
                let mut owned = log::read_after(log, position - 1, 1)
                    .await
                    .context("read an undecodable delivery from the log")?;
                match owned.pop() {
                    Some(ev) if ev.position == position => {
                        report.from_log += 1;
                        todo.push(Cow::Owned(ev));
                    }
                    _ => {
                        return Err(Failure::Other(anyhow::anyhow!(
                            "position {position} is not in the log"
                        )));
                    }
                }
            }
        }
        next = position;
    }
    apply_all(
        &mut tx,
        projection,
        todo.iter().map(|e| &**e),
        careful,
        &mut report,
    )
    .await?;
    if report.checkpoint > start {
        save_checkpoint(&mut tx, projection, report.checkpoint).await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(report)
}

/// Reads events after the checkpoint directly from the log and commits them, `batch` per
/// transaction, until the log has no more. Returns the number of events applied.
pub(crate) async fn catch_up(
    pool: &PgPool,
    log: &PgPool,
    projection: &str,
    batch: i64,
) -> anyhow::Result<u64> {
    let mut total = 0u64;
    loop {
        let mut careful = false;
        let report = loop {
            match try_log_batch(pool, log, projection, batch, careful).await {
                Ok(r) => break r,
                Err(Failure::NeedsCareful) if !careful => careful = true,
                Err(Failure::NeedsCareful) => anyhow::bail!("poison event escaped careful mode"),
                Err(Failure::Other(e)) => return Err(e),
            }
        };
        total += report.applied;
        if report.applied < u64::try_from(batch.max(1))? {
            return Ok(total);
        }
    }
}

async fn try_log_batch(
    pool: &PgPool,
    log: &PgPool,
    projection: &str,
    batch: i64,
    careful: bool,
) -> Result<BatchReport, Failure> {
    let mut tx = pool.begin_with(BEGIN_PROJECTION).await?;
    let start = lock_checkpoint(&mut tx, projection).await?;
    let mut report = BatchReport {
        checkpoint: start,
        ..BatchReport::default()
    };
    let events = log::read_after(log, start, batch.max(1))
        .await
        .context("read the log")?;
    for (expected, ev) in (start + 1..).zip(&events) {
        if ev.position != expected {
            return Err(Failure::Other(anyhow::anyhow!(
                "log read is not contiguous: expected position {expected}, got {}",
                ev.position
            )));
        }
    }
    apply_all(&mut tx, projection, events.iter(), careful, &mut report).await?;
    if report.checkpoint > start {
        save_checkpoint(&mut tx, projection, report.checkpoint).await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(report)
}

/// Applies `events` (contiguous, in position order). Fast mode applies each run of consecutive
/// `MessageSent` events in one statement ([`apply_message_run`]) and everything else one by one;
/// careful mode goes event by event so a poison event can be isolated.
async fn apply_all<'a>(
    tx: &mut PgConnection,
    projection: &str,
    events: impl Iterator<Item = &'a RecordedEvent>,
    careful: bool,
    report: &mut BatchReport,
) -> Result<(), Failure> {
    let mut run: Vec<SentRow> = Vec::new();
    for ev in events {
        if !careful && let Some(row) = as_message_sent(ev) {
            run.push(row);
            continue;
        }
        flush_run(tx, &mut run, report).await?;
        apply_one(tx, projection, ev, careful, report).await?;
    }
    flush_run(tx, &mut run, report).await
}

async fn flush_run(
    tx: &mut PgConnection,
    run: &mut Vec<SentRow>,
    report: &mut BatchReport,
) -> Result<(), Failure> {
    let Some(last) = run.last().map(|m| m.position) else {
        return Ok(());
    };
    match apply_message_run(tx, run).await {
        Ok(()) => {}
        Err(e) if e.is_poison() => return Err(Failure::NeedsCareful),
        Err(e) => return Err(Failure::Other(e.into())),
    }
    report.applied += run.len() as u64;
    report.checkpoint = last;
    run.clear();
    Ok(())
}

/// Applies one event. Fast mode: any poison aborts the batch (the caller redoes it carefully).
/// Careful mode: a savepoint per event; a poison event is rolled back to its savepoint and
/// recorded in `dead_letters`, and the batch goes on.
async fn apply_one(
    tx: &mut PgConnection,
    projection: &str,
    ev: &RecordedEvent,
    careful: bool,
    report: &mut BatchReport,
) -> Result<(), Failure> {
    if !careful {
        match apply_event(tx, ev).await {
            Ok(()) => {}
            Err(e) if e.is_poison() => return Err(Failure::NeedsCareful),
            Err(ApplyError::Database(e)) => return Err(Failure::Other(e.into())),
            Err(e) => return Err(Failure::Other(e.into())),
        }
    } else {
        let mut sp = tx.begin().await?;
        match apply_event(&mut sp, ev).await {
            Ok(()) => sp.commit().await?,
            Err(e) if e.is_poison() => {
                sp.rollback().await?;
                let reason = e.reason();
                tracing::warn!(
                    position = ev.position,
                    event_type = %ev.event_type,
                    stream_id = %ev.stream_id,
                    %reason,
                    "poison event sent to dead_letters"
                );
                sqlx::query(
                    "INSERT INTO dead_letters (projection, position, event_id, event_type, \
                     reason, payload) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (projection, position) DO UPDATE SET reason = EXCLUDED.reason, \
                     failed_at = now()",
                )
                .bind(projection)
                .bind(ev.position)
                .bind(ev.event_id)
                .bind(&ev.event_type)
                .bind(reason)
                .bind(sqlx::types::Json(ev))
                .execute(&mut *tx)
                .await?;
                report.dead_lettered += 1;
            }
            Err(e) => return Err(Failure::Other(e.into())),
        }
    }
    report.applied += 1;
    report.checkpoint = ev.position;
    Ok(())
}
