//! Group commit: many appends, one transaction (docs/architecture.md D3).
//!
//! A single task receives `(AppendRequest, reply)` pairs over a bounded channel, takes one, drains
//! whatever else is already queued (up to `max_batch`, no artificial linger), appends the batch in
//! one transaction, and only then answers each waiter. A waiter never hears "appended" before the
//! commit succeeded.
//!
//! The transaction is one statement in autocommit when the batch allows it
//! ([`crate::one_statement`]), and otherwise (or when that statement refuses the batch)
//! `BEGIN`, [`append_locked`] and `COMMIT`.

use std::fmt;
use std::time::{Duration, Instant};

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, Registry};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::one_statement::{Plan, append_one_statement};
use crate::pool::pool_options;
use crate::postgres::{BEGIN_APPEND, append_locked};
use crate::recent::Recent;
use crate::store::StoreError;
use crate::store::{AppendError, AppendRequest, Appended};

/// Group-commit tuning.
#[derive(Clone, Debug)]
pub struct GroupCommitConfig {
    /// Most requests per transaction (default 512).
    pub max_batch: usize,
    /// Capacity of the request queue (default 16384); senders wait when it is full.
    pub queue: usize,
    /// Where committed events go for this process's relay (default none).
    pub recent: Option<Recent>,
    /// Run the committer on a thread of its own, with its own runtime and two connections
    /// (default false: a task on the caller's runtime). A transaction holds the log's head
    /// lock for one to four round trips; on a runtime busy with thousands of HTTP requests each of
    /// them waits its turn in the run queue, and every append in the process waits for the
    /// lock holder. On its own thread the committer is scheduled by the OS as soon as
    /// PostgreSQL answers.
    pub dedicated_thread: bool,
    /// Where to record batch sizes and step times (default none).
    pub metrics: Option<CommitMetrics>,
}

/// What an operator watches of group commit: how many appends share a transaction, and
/// how long each step holds the log's head lock (every other append waits for it).
#[derive(Clone)]
pub struct CommitMetrics {
    /// `chat_group_commit_batch_size`: append requests per transaction.
    pub batch_size: Histogram,
    /// `chat_group_commit_seconds{step}`: `one_statement` (the whole transaction, on the
    /// fast path), or `begin_and_lock`, `read_and_write`, `commit` on the locked path
    /// (`commit` is mostly the WAL flush).
    pub seconds: HistogramVec,
    /// `chat_events_appended_total`: events committed to the log by this process (the group
    /// commit's, and those its owner appends in transactions of its own).
    pub events: IntCounter,
}

impl fmt::Debug for CommitMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommitMetrics")
    }
}

impl CommitMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "chat_group_commit_batch_size",
                "Append requests per group-commit transaction",
            )
            .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "chat_group_commit_seconds",
                "Time of each step of a group-commit transaction",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
            ]),
            &["step"],
        )?;
        let events = IntCounter::new(
            "chat_events_appended_total",
            "Events committed to the log by this process",
        )?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(events.clone()))?;
        Ok(CommitMetrics {
            batch_size,
            seconds,
            events,
        })
    }
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            max_batch: 512,
            queue: 16384,
            recent: None,
            dedicated_thread: false,
            metrics: None,
        }
    }
}

type Reply = oneshot::Sender<Result<Appended, AppendError>>;

/// The sending side of the committer task. The task ends when every handle is dropped (after
/// finishing what is queued).
#[derive(Clone, Debug)]
pub(crate) struct Handle {
    tx: mpsc::Sender<(AppendRequest, Reply)>,
}

impl Handle {
    pub(crate) async fn append(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        outcome(self.queue(req).await).await
    }

    /// Queues `reqs` one after the other, then waits for them all. Sent concurrently (one
    /// [`Handle::append`] future each, joined) they may be queued in any order: a future
    /// whose send waits (a full queue, or tokio's cooperative budget spent) is polled again
    /// after others that went ahead.
    pub(crate) async fn append_in_order(
        &self,
        reqs: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        let mut queued = Vec::with_capacity(reqs.len());
        for req in reqs {
            queued.push(self.queue(req).await);
        }
        let mut results = Vec::with_capacity(queued.len());
        for reply in queued {
            results.push(outcome(reply).await);
        }
        results
    }

    /// Hands `req` to the committer; `None` when it has stopped.
    async fn queue(
        &self,
        req: AppendRequest,
    ) -> Option<oneshot::Receiver<Result<Appended, AppendError>>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send((req, reply)).await.ok().map(|()| rx)
    }
}

/// What the committer answered for a queued request ([`AppendError::ShuttingDown`] if it
/// stopped first).
async fn outcome(
    reply: Option<oneshot::Receiver<Result<Appended, AppendError>>>,
) -> Result<Appended, AppendError> {
    match reply {
        Some(rx) => rx.await.unwrap_or(Err(AppendError::ShuttingDown)),
        None => Err(AppendError::ShuttingDown),
    }
}

pub(crate) fn spawn(pool: PgPool, config: GroupCommitConfig) -> Handle {
    let (tx, rx) = mpsc::channel(config.queue.max(1));
    let max_batch = config.max_batch.max(1);
    if !config.dedicated_thread {
        tokio::spawn(run(pool, rx, max_batch, config.recent, config.metrics));
        return Handle { tx };
    }
    let options = pool.connect_options();
    drop(pool);
    let thread = std::thread::Builder::new()
        .name("group-commit".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                // Connections opened here belong to this thread's runtime.
                Ok(rt) => rt.block_on(async move {
                    // Generic plans for the append statements: PostgreSQL keeps choosing
                    // custom plans for their array parameters, and planning them again
                    // on every group commit costs a fifth of the backend's CPU (ADR 8).
                    let options = (*options)
                        .clone()
                        .options([("plan_cache_mode", "force_generic_plan")]);
                    let own = pool_options(2).connect_lazy_with(options);
                    run(own, rx, max_batch, config.recent, config.metrics).await;
                }),
                Err(e) => tracing::error!(error = %e, "cannot start the group commit runtime"),
            }
        });
    if let Err(e) = thread {
        // Without its thread the receiver is gone, and every append reports ShuttingDown.
        tracing::error!(error = %e, "cannot start the group commit thread");
    }
    Handle { tx }
}

async fn run(
    pool: PgPool,
    mut rx: mpsc::Receiver<(AppendRequest, Reply)>,
    max_batch: usize,
    recent: Option<Recent>,
    metrics: Option<CommitMetrics>,
) {
    let mut batch: Vec<(AppendRequest, Reply)> = Vec::with_capacity(max_batch);
    // `recv_many` waits for at least one request, then takes whatever else is queued.
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        tracing::debug!(batch_size = batch.len(), "group commit");
        let (reqs, replies): (Vec<AppendRequest>, Vec<Reply>) = batch.drain(..).unzip();
        if let Some(recent) = &recent {
            recent.begin();
        }
        let results = commit_batch(&pool, &reqs, metrics.as_ref()).await;
        if tracing::enabled!(tracing::Level::DEBUG) {
            log_batch(&reqs, &results);
        }
        if let Some(recent) = &recent {
            // Only what was committed (`Ok`); see `commit_batch`.
            recent.committed(
                reqs.into_iter()
                    .zip(&results)
                    .filter_map(|(req, res)| res.as_ref().ok().map(|a| (req, a))),
            );
        }
        for (reply, result) in replies.into_iter().zip(results) {
            // The waiter may have gone away (request cancelled); the append stands regardless.
            let _ = reply.send(result);
        }
    }
    tracing::debug!("group commit task finished");
}

/// One line per committed batch at `debug`: its positions and the correlation ids of the
/// requests it appended, so a request can be followed from its handler to the log.
fn log_batch(reqs: &[AppendRequest], results: &[Result<Appended, AppendError>]) {
    let appended: Vec<String> = reqs
        .iter()
        .zip(results)
        .filter_map(|(req, r)| r.as_ref().ok().zip(req.events.first()))
        .map(|(a, ev)| format!("{}@{}", ev.correlation_id, a.last_position))
        .collect();
    tracing::debug!(
        batch_size = reqs.len(),
        appended = appended.len(),
        correlation_ids = %appended.join(","),
        "group commit appended"
    );
}

/// Runs one batch; returns exactly one result per request.
async fn commit_batch(
    pool: &PgPool,
    reqs: &[AppendRequest],
    metrics: Option<&CommitMetrics>,
) -> Vec<Result<Appended, AppendError>> {
    match try_commit(pool, reqs, metrics).await {
        Ok(results) => results,
        Err(Failure::BeforeCommit(e)) if reqs.len() > 1 && e.as_database_error().is_some() => {
            // A statement was rejected by the database (e.g. a duplicate event_id): nothing was
            // committed, so isolate the offender by running each request on its own.
            tracing::warn!(error = %e, batch_size = reqs.len(), "group commit batch failed; retrying requests one by one");
            let mut out = Vec::with_capacity(reqs.len());
            for req in reqs {
                let one = std::slice::from_ref(req);
                match try_commit(pool, one, metrics).await {
                    Ok(mut r) => out.push(r.pop().unwrap_or(Err(AppendError::ShuttingDown))),
                    Err(Failure::BeforeCommit(e)) | Err(Failure::Commit(e)) => {
                        out.push(Err(AppendError::Store(e.into())))
                    }
                }
            }
            out
        }
        Err(Failure::BeforeCommit(e)) | Err(Failure::Commit(e)) => {
            // Connection-level failure, or the commit itself failed (outcome unknown): every
            // waiter gets the error; none gets a success.
            tracing::warn!(error = %e, batch_size = reqs.len(), "group commit transaction failed");
            let e = StoreError::from(e);
            let mut out = Vec::with_capacity(reqs.len());
            for _ in 1..reqs.len() {
                out.push(Err(AppendError::Store(copy_error(&e))));
            }
            if !reqs.is_empty() {
                out.push(Err(AppendError::Store(e)));
            }
            out
        }
    }
}

enum Failure {
    /// Failed before COMMIT was sent: nothing is durable.
    BeforeCommit(sqlx::Error),
    /// COMMIT failed: the outcome is unknown.
    Commit(sqlx::Error),
}

/// One batch as group commit runs it (the one statement when it can decide, else the
/// locked path), for the tests that compare the two.
#[cfg(test)]
pub(crate) async fn try_commit_for_test(
    pool: &PgPool,
    reqs: &[AppendRequest],
) -> Vec<Result<Appended, AppendError>> {
    match try_commit(pool, reqs, None).await {
        Ok(results) => results,
        Err(Failure::BeforeCommit(e) | Failure::Commit(e)) => panic!("batch failed: {e}"),
    }
}

async fn try_commit(
    pool: &PgPool,
    reqs: &[AppendRequest],
    metrics: Option<&CommitMetrics>,
) -> Result<Vec<Result<Appended, AppendError>>, Failure> {
    if let Some(plan) = Plan::new(reqs) {
        let started = Instant::now();
        match append_one_statement(pool, plan).await {
            Ok(Some(results)) => {
                record(
                    metrics,
                    reqs.len(),
                    appended_events(&results),
                    &[("one_statement", started.elapsed())],
                );
                return Ok(results);
            }
            // A check failed or a unique index said no: nothing was written. The locked
            // path below finds out which request it was.
            Ok(None) => {}
            // The database refused the statement, so it rolled back; the locked path
            // isolates the offender (`commit_batch`).
            Err(e) if e.as_database_error().is_some() => {
                tracing::debug!(error = %e, "one-statement append refused; taking the locked path");
            }
            // The connection failed with the statement (and its commit) in flight.
            Err(e) => return Err(Failure::Commit(e)),
        }
    }
    let started = Instant::now();
    let mut tx = pool
        .begin_with(BEGIN_APPEND)
        .await
        .map_err(Failure::BeforeCommit)?;
    let locked = started.elapsed();
    let results = append_locked(&mut tx, reqs)
        .await
        .map_err(Failure::BeforeCommit)?;
    let written = started.elapsed();
    if results.iter().any(Result::is_ok) {
        tx.commit().await.map_err(Failure::Commit)?;
    } else if let Err(e) = tx.rollback().await {
        // Nothing was written; the rejections stand.
        tracing::debug!(error = %e, "rollback of a fully rejected batch failed");
    }
    let total = started.elapsed();
    record(
        metrics,
        reqs.len(),
        appended_events(&results),
        &[
            ("begin_and_lock", locked),
            ("read_and_write", written - locked),
            ("commit", total - written),
        ],
    );
    Ok(results)
}

/// The events the accepted requests of a committed batch appended.
fn appended_events(results: &[Result<Appended, AppendError>]) -> u64 {
    results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|a| u64::try_from(a.last_position - a.first_position + 1).unwrap_or(0))
        .sum()
}

/// Records a transaction's batch size, the events it appended and the time of each step,
/// and logs it when it was slow: every append in the process waited for it, since it held
/// the head lock.
fn record(
    metrics: Option<&CommitMetrics>,
    batch_size: usize,
    events: u64,
    steps: &[(&'static str, Duration)],
) {
    if let Some(m) = metrics {
        m.batch_size.observe(batch_size as f64);
        m.events.inc_by(events);
        for (step, d) in steps {
            m.seconds
                .with_label_values(&[step])
                .observe(d.as_secs_f64());
        }
    }
    let total: Duration = steps.iter().map(|(_, d)| *d).sum();
    if total >= SLOW_COMMIT {
        let steps_ms: Vec<(&str, f64)> = steps.iter().map(|(step, d)| (*step, ms(*d))).collect();
        tracing::warn!(
            batch_size,
            total_ms = ms(total),
            steps_ms = ?steps_ms,
            "slow group commit"
        );
    }
}

/// A transaction slower than this is logged with the time of each step.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `sqlx::Error` is not `Clone`: a copy for every waiter of a failed batch, of the same
/// kind (unavailable or not) and with the same text.
fn copy_error(e: &StoreError) -> StoreError {
    let copy = |e: &sqlx::Error| match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(format!("group commit failed: {other}")),
    };
    match e {
        StoreError::Unavailable(e) => StoreError::Unavailable(copy(e)),
        StoreError::Query(e) => StoreError::Query(copy(e)),
    }
}
