//! What every projection shares, written once: turning deliveries into a contiguous batch
//! (duplicates dropped, gaps and undecodable deliveries read from the log, never skipped),
//! dead letters, catch-up straight from the log and rebuilds. The live JetStream loop around it
//! is [`crate::Projector`].
//!
//! The framework keeps its own idea of a projection's checkpoint (read once when it starts,
//! then taken from each commit) to build batches without a round trip; the projection checks
//! it against its own, locked checkpoint. If the framework was behind, the projection skips the
//! duplicates; if it was ahead (a rebuild reset the projection meanwhile), the projection
//! reports [`ApplyBatchError::Gap`] and the framework fills it from the log.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use eventlog::{PgEventStore, RecordedEvent};
use sqlx::PgPool;
use vault::Keyring;

use crate::log;
use crate::projection::{ApplyBatchError, Batch, Projection, Replay, Switched};

/// Events read from the log per query.
const LOG_CHUNK: i64 = 1000;

/// What one committed batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Events applied (including dead-lettered ones: the checkpoint moved past them).
    pub applied: u64,
    /// Of those, events that went to `dead_letters`.
    pub dead_lettered: u64,
    /// Of those, events read from the log because the transport skipped them or they did not
    /// decode.
    pub from_log: u64,
    /// Delivered events at or below the checkpoint, skipped.
    pub duplicates: u64,
    /// The checkpoint after the batch.
    pub checkpoint: i64,
}

/// A delivered event: its position (the stream sequence) and, when the payload decoded and
/// agreed with that position, the event. `None` means "read it from the log".
pub(crate) type Delivered = (i64, Option<RecordedEvent>);

/// Commits the delivered events (any order, duplicates allowed) through `projection`:
/// positions at or below `checkpoint` are dropped, every position missing up to the last
/// delivery (a gap, or a delivery that did not decode) is read from the log, and the
/// contiguous result is opened with `keyring` (ADR 23) and applied with [`apply_contiguous`].
/// `checkpoint` is the framework's idea of the projection's checkpoint; it is updated. `pool`
/// holds `dead_letters`.
pub(crate) async fn commit_delivered(
    projection: &dyn Projection,
    pool: &PgPool,
    log: &PgEventStore,
    keyring: &Keyring,
    checkpoint: &mut i64,
    mut delivered: Vec<Delivered>,
) -> anyhow::Result<BatchReport> {
    delivered.sort_by_key(|d| d.0);
    delivered.dedup_by_key(|d| d.0);
    let mut report = BatchReport {
        checkpoint: *checkpoint,
        ..BatchReport::default()
    };
    let mut events: Vec<RecordedEvent> = Vec::with_capacity(delivered.len());
    let mut next = *checkpoint;
    for (position, event) in delivered {
        if position <= next {
            report.duplicates += 1;
            continue;
        }
        // A gap (the transport skipped events: purged, max_deliver, a lost stream) or a
        // delivery that did not decode. Never skip: read them from the log, the source of truth.
        let upto = if event.is_some() {
            position - 1
        } else {
            position
        };
        report.from_log += read_range(log, next, upto, &mut events).await?;
        if let Some(ev) = event {
            events.push(ev);
        }
        next = position;
    }
    keyring.open_events(&mut events).await?;
    // The projection's checkpoint can only be below ours if a rebuild reset it meanwhile; a
    // few attempts are plenty.
    for _ in 0..3 {
        match apply_contiguous(projection, pool, &events, &mut report).await {
            Ok(()) => {
                *checkpoint = report.checkpoint;
                return Ok(report);
            }
            Err(ApplyBatchError::Gap { checkpoint: behind }) => {
                let mut missing = Vec::new();
                let first = events.first().map_or(behind, |e| e.position - 1);
                report.from_log += read_range(log, behind, first, &mut missing).await?;
                keyring.open_events(&mut missing).await?;
                missing.append(&mut events);
                events = missing;
                *checkpoint = behind;
            }
            Err(ApplyBatchError::Failed(e)) => return Err(e),
        }
    }
    anyhow::bail!(
        "projection {} kept moving back while a batch was applied",
        projection.name()
    )
}

/// Reads positions `after + 1 ..= upto` from the log into `into`, all of them or an error.
/// Returns how many.
async fn read_range(
    log: &PgEventStore,
    after: i64,
    upto: i64,
    into: &mut Vec<RecordedEvent>,
) -> anyhow::Result<u64> {
    let mut next = after;
    while next < upto {
        let chunk = log::read_after(log, next, (upto - next).min(LOG_CHUNK))
            .await
            .context("read missing events from the log")?;
        anyhow::ensure!(
            !chunk.is_empty(),
            "position {} is not in the log (yet)",
            next + 1
        );
        for ev in chunk {
            anyhow::ensure!(
                ev.position == next + 1,
                "log read is not contiguous: expected position {}, got {}",
                next + 1,
                ev.position
            );
            next = ev.position;
            into.push(ev);
        }
    }
    Ok(u64::try_from(upto.saturating_sub(after).max(0))?)
}

/// Applies `events` (contiguous, in position order) through `projection` until all are
/// committed. A poison event it reports is recorded in `dead_letters` (`pool`) first, and only
/// then stepped over by the projection (the next call, atomically with its store): a crash in
/// between re-applies it, finds it poison again and writes the same dead letter again.
pub(crate) async fn apply_contiguous(
    projection: &dyn Projection,
    pool: &PgPool,
    events: &[RecordedEvent],
    report: &mut BatchReport,
) -> Result<(), ApplyBatchError> {
    let mut rest = events;
    let mut dead_lettered: Vec<i64> = Vec::new();
    while !rest.is_empty() {
        let applied = projection
            .apply_batch(Batch {
                events: rest,
                dead_lettered: &dead_lettered,
            })
            .await?;
        report.applied += applied.applied;
        report.duplicates += applied.skipped;
        report.checkpoint = applied.checkpoint;
        rest = &rest[rest.partition_point(|e| e.position <= applied.checkpoint)..];
        let Some(poison) = applied.poison else {
            if rest.is_empty() {
                break;
            }
            return Err(anyhow::anyhow!(
                "projection {} stopped at position {} without a reason",
                projection.name(),
                applied.checkpoint
            )
            .into());
        };
        let event = rest
            .first()
            .filter(|e| e.position == poison.position)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "projection {} reported position {} as poison, not the next one after {}",
                    projection.name(),
                    poison.position,
                    applied.checkpoint
                )
            })?;
        dead_letter(pool, projection.name(), event, &poison.reason).await?;
        report.dead_lettered += 1;
        dead_lettered.push(poison.position);
    }
    Ok(())
}

/// Records a poison event of `projection` in `dead_letters` (again: the same row).
async fn dead_letter(
    pool: &PgPool,
    projection: &str,
    ev: &RecordedEvent,
    reason: &str,
) -> anyhow::Result<()> {
    tracing::warn!(
        projection,
        position = ev.position,
        event_type = %ev.event_type,
        stream_id = %ev.stream_id,
        %reason,
        "poison event sent to dead_letters"
    );
    sqlx::query(
        "INSERT INTO dead_letters (projection, position, event_id, event_type, reason, payload) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (projection, position) DO UPDATE SET reason = EXCLUDED.reason, \
         failed_at = now()",
    )
    .bind(projection)
    .bind(ev.position)
    .bind(ev.event_id)
    .bind(&ev.event_type)
    .bind(reason)
    .bind(sqlx::types::Json(ev))
    .execute(pool)
    .await
    .context("write a dead letter")?;
    Ok(())
}

/// Applies every event after `projection`'s checkpoint, read directly from the log, `batch`
/// events per call (one commit each), until the log has no more. `pool` holds `dead_letters`.
/// Returns the number of events applied (dead-lettered ones included).
pub async fn catch_up_from_log(
    projection: &dyn Projection,
    pool: &PgPool,
    log: &PgPool,
    batch: i64,
) -> anyhow::Result<u64> {
    // One reader, and one keyring, for the whole catch-up.
    let store = PgEventStore::reader(log.clone());
    let keyring = Keyring::new(log.clone(), false);
    let batch = batch.max(1);
    let mut checkpoint = projection
        .checkpoint()
        .await
        .with_context(|| format!("the checkpoint of {}", projection.name()))?;
    let mut total = 0u64;
    loop {
        let mut events = log::read_after(&store, checkpoint, batch)
            .await
            .context("read the log")?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(total);
        };
        keyring.open_events(&mut events).await?;
        let read = i64::try_from(events.len())?;
        anyhow::ensure!(
            last == checkpoint + read,
            "log read is not contiguous: {read} events after position {checkpoint} end at {last}"
        );
        let mut report = BatchReport::default();
        match apply_contiguous(projection, pool, &events, &mut report).await {
            Ok(()) => {}
            Err(ApplyBatchError::Gap { checkpoint: behind }) => {
                checkpoint = behind;
                continue;
            }
            Err(ApplyBatchError::Failed(e)) => return Err(e),
        }
        total += report.applied;
        checkpoint = report.checkpoint;
        if read < batch {
            return Ok(total);
        }
    }
}

/// Where a rebuild is ([`rebuild`] reports it after every committed batch and each phase).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub projection: String,
    pub phase: Phase,
    /// The copy's checkpoint.
    pub position: i64,
    /// The log's head when last read.
    pub head: i64,
    /// Events applied to the copy so far.
    pub applied: u64,
    /// Since the rebuild started.
    pub elapsed: Duration,
}

impl Progress {
    /// Applied events per second so far.
    pub fn rate(&self) -> f64 {
        self.applied as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The copy's position as a fraction of the head (1 when the log is empty).
    pub fn fraction(&self) -> f64 {
        if self.head <= 0 {
            1.0
        } else {
            (self.position as f64 / self.head as f64).clamp(0.0, 1.0)
        }
    }
}

/// The phases of a [`rebuild`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Replaying the log into the copy.
    Replay,
    /// [`crate::projection::Staged::bulk_loaded`]: indexes, merges.
    Indexing,
    /// Catching up the last stretch and switching.
    Switching,
    /// Switched: the copy is live.
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Replay => "replay",
            Phase::Indexing => "indexing",
            Phase::Switching => "switching",
            Phase::Done => "done",
        }
    }
}

/// What a [`rebuild`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rebuilt {
    /// Events applied to the copy (dead-lettered ones included), the final catch-up too.
    pub events: u64,
    pub switched: Switched,
    pub elapsed: Duration,
}

/// Rebuilds `projection` blue/green ([`Projection::stage`], ADR 11) while it keeps serving:
/// an empty copy is filled from the log, `batch` events per commit, with the next chunk read
/// while the last one is applied; then [`crate::projection::Staged::bulk_loaded`]; then
/// [`crate::projection::Staged::switch`] catches the copy up and makes it live under a new
/// epoch. `progress` hears about every committed batch and phase.
///
/// One rebuild per projection at a time (a PostgreSQL advisory lock in `pool`, held for the
/// whole rebuild; a second one fails at once). A rebuild that fails or is interrupted leaves
/// the live projection untouched (its copy is dropped, or discarded by the next rebuild).
/// Dead letters: the copy writes its own (the same rows when the same events are poison);
/// those of the old copy that the replay no longer found poison go at the switch.
pub async fn rebuild(
    projection: &dyn Projection,
    pool: &PgPool,
    log: &PgPool,
    batch: i64,
    progress: &(dyn Fn(&Progress) + Sync),
) -> anyhow::Result<Rebuilt> {
    let name = projection.name();
    let mut lock = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(format!("chat.rebuild.{name}"))
        .fetch_one(&mut *lock)
        .await?;
    anyhow::ensure!(locked, "a rebuild of {name} is already running");
    let started_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *lock)
        .await?;
    let recorder = Recorder::new(pool.clone(), started_at);
    let report = |p: &Progress| {
        recorder.record(p);
        progress(p);
    };
    let result = rebuild_locked(projection, pool, log, batch, &report).await;
    recorder.finish(result.as_ref().err()).await;
    if let Ok(done) = &result {
        sqlx::query(
            "DELETE FROM dead_letters WHERE projection = $1 AND position <= $2              AND failed_at < $3",
        )
        .bind(name)
        .bind(done.switched.checkpoint)
        .bind(started_at)
        .execute(&mut *lock)
        .await
        .context("delete the dead letters the rebuild did not find again")?;
    }
    // Closing the session would release it too; a pooled connection has to say so.
    sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
        .bind(format!("chat.rebuild.{name}"))
        .execute(&mut *lock)
        .await?;
    result
}

async fn rebuild_locked(
    projection: &dyn Projection,
    pool: &PgPool,
    log: &PgPool,
    batch: i64,
    progress: &(dyn Fn(&Progress) + Sync),
) -> anyhow::Result<Rebuilt> {
    let name = projection.name();
    let started = Instant::now();
    let staged = projection
        .stage()
        .await
        .with_context(|| format!("stage a copy of {name}"))?;
    let store = PgEventStore::reader(log.clone());
    let mut now = Progress {
        projection: name.to_owned(),
        phase: Phase::Replay,
        position: 0,
        head: log::head(&store).await?,
        applied: 0,
        elapsed: Duration::ZERO,
    };
    progress(&now);
    let replayed = replay(
        staged.copy(),
        pool,
        &store,
        batch,
        &mut now,
        started,
        progress,
    )
    .await;
    if let Err(e) = replayed {
        // Best effort: the next rebuild discards it anyway.
        if let Err(drop) = staged.abandon().await {
            tracing::warn!(projection = name, error = %drop, "could not drop the copy");
        }
        return Err(e);
    }
    now.phase = Phase::Indexing;
    now.elapsed = started.elapsed();
    progress(&now);
    staged.bulk_loaded().await?;
    now.phase = Phase::Switching;
    now.head = log::head(&store).await?;
    now.elapsed = started.elapsed();
    progress(&now);
    let copy_before = staged.copy().checkpoint().await?;
    let replay = Replay {
        pool: pool.clone(),
        log: log.clone(),
        batch,
    };
    let switched = staged.switch(&replay).await?;
    now.applied += u64::try_from(switched.checkpoint - copy_before).unwrap_or(0);
    now.phase = Phase::Done;
    now.position = switched.checkpoint;
    now.head = now.head.max(switched.checkpoint);
    now.elapsed = started.elapsed();
    progress(&now);
    tracing::info!(
        projection = name,
        events = now.applied,
        epoch = switched.epoch,
        seconds = now.elapsed.as_secs_f64(),
        "rebuilt and switched"
    );
    Ok(Rebuilt {
        events: now.applied,
        switched,
        elapsed: now.elapsed,
    })
}

/// Replays the log into `copy` up to the head it finds at the end, reading the next chunk
/// while the last one is applied.
async fn replay(
    copy: &dyn Projection,
    pool: &PgPool,
    store: &PgEventStore,
    batch: i64,
    now: &mut Progress,
    started: Instant,
    progress: &(dyn Fn(&Progress) + Sync),
) -> anyhow::Result<()> {
    let batch = batch.max(1);
    let from = copy.checkpoint().await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<Vec<RecordedEvent>>>(2);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut next = from;
            loop {
                let chunk = log::read_after(&store, next, batch)
                    .await
                    .context("read the log");
                let last = match &chunk {
                    Ok(events) => events.last().map(|e| e.position),
                    Err(_) => None,
                };
                let done = chunk.as_ref().map_or(true, |e| (e.len() as i64) < batch);
                if tx.send(chunk).await.is_err() {
                    return;
                }
                match last {
                    Some(last) if !done => next = last,
                    _ => return,
                }
            }
        })
    };
    let _stop_reader = AbortOnDrop(reader);
    let mut next = from;
    now.position = from;
    let keyring = Keyring::new(store.pool().clone(), false);
    while let Some(events) = rx.recv().await {
        let mut events = events?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        anyhow::ensure!(
            events[0].position == next + 1 && last - next == events.len() as i64,
            "log read is not contiguous: {} events after position {next} end at {last}",
            events.len()
        );
        next = last;
        keyring.open_events(&mut events).await?;
        let mut report = BatchReport::default();
        match apply_contiguous(copy, pool, &events, &mut report).await {
            Ok(()) => {}
            Err(ApplyBatchError::Gap { checkpoint }) => {
                anyhow::bail!("the copy moved to {checkpoint} behind the rebuild's back")
            }
            Err(ApplyBatchError::Failed(e)) => return Err(e),
        }
        now.applied += report.applied;
        now.position = report.checkpoint;
        now.head = now.head.max(last);
        now.elapsed = started.elapsed();
        progress(now);
    }
    Ok(())
}

/// Keeps `projection_rebuilds` current for the services' metrics: the latest report is
/// written in the background (one at a time, the newest wins), so a slow write never holds
/// the rebuild back.
struct Recorder {
    latest: tokio::sync::watch::Sender<Option<Progress>>,
    writer: tokio::task::JoinHandle<()>,
    pool: PgPool,
    started_at: chrono::DateTime<chrono::Utc>,
}

impl Recorder {
    fn new(pool: PgPool, started_at: chrono::DateTime<chrono::Utc>) -> Recorder {
        let (latest, mut rx) = tokio::sync::watch::channel::<Option<Progress>>(None);
        let writer_pool = pool.clone();
        let writer = tokio::spawn(async move {
            let pool = writer_pool;
            while rx.changed().await.is_ok() {
                let Some(p) = rx.borrow_and_update().clone() else {
                    continue;
                };
                if let Err(e) = write_progress(&pool, &p, p.phase.as_str(), started_at).await {
                    tracing::warn!(error = %e, "could not record the rebuild's progress");
                }
            }
        });
        Recorder {
            latest,
            writer,
            pool,
            started_at,
        }
    }

    fn record(&self, p: &Progress) {
        self.latest.send_replace(Some(p.clone()));
    }

    /// Writes the last report (as `failed` when the rebuild failed) and stops.
    async fn finish(self, failed: Option<&anyhow::Error>) {
        let Recorder {
            latest,
            writer,
            pool,
            started_at,
        } = self;
        let last = latest.borrow().clone();
        drop(latest);
        let _ = writer.await;
        if let (Some(p), Some(_)) = (last, failed)
            && let Err(e) = write_progress(&pool, &p, "failed", started_at).await
        {
            tracing::warn!(error = %e, "could not record the rebuild's failure");
        }
    }
}

async fn write_progress(
    pool: &PgPool,
    p: &Progress,
    phase: &str,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_rebuilds (projection, phase, position, head, applied, \
         events_per_second, started_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now()) \
         ON CONFLICT (projection) DO UPDATE SET phase = EXCLUDED.phase, \
         position = EXCLUDED.position, head = EXCLUDED.head, applied = EXCLUDED.applied, \
         events_per_second = EXCLUDED.events_per_second, started_at = EXCLUDED.started_at, \
         updated_at = now()",
    )
    .bind(&p.projection)
    .bind(phase)
    .bind(p.position)
    .bind(p.head)
    .bind(i64::try_from(p.applied).unwrap_or(i64::MAX))
    .bind(p.rate())
    .bind(started_at)
    .execute(pool)
    .await?;
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
