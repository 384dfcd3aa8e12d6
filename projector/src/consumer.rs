//! The live path of every projection: a durable JetStream pull consumer per projection, named
//! after it, feeding [`crate::framework`].
//!
//! The consumer is (re-)created starting at `checkpoint + 1` whenever the runner starts and
//! after any failure (the stream was re-created by the relay, the consumer was deleted, NATS or
//! the projection's store failed): the projection's checkpoint, not the consumer's ack floor,
//! says where to resume. Messages are acked (AckPolicy::All, the last one of a batch) only after
//! the projection committed the batch; a crash in between only causes duplicates, which the
//! projection skips.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use eventlog::reconnect::{Connection, Reconnected};
use eventlog::{PgEventStore, RecordedEvent};
use futures::{FutureExt as _, StreamExt as _};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::framework::{self, BatchReport, Delivered};
use crate::log;
use crate::metrics::Metrics;
use crate::projection::Projection;

/// How a projection's runner consumes the stream.
#[derive(Clone, Debug)]
pub struct ProjectorConfig {
    /// JetStream stream of all events (the relay's).
    pub stream_name: String,
    /// Subjects are `{subject_prefix}.events.>`.
    pub subject_prefix: String,
    /// Durable consumer name; `None` (the default): named after the projection
    /// ([`consumer_name`]).
    pub consumer_name: Option<String>,
    /// Most events per transaction (default 500).
    pub batch: usize,
    /// Deliveries of one message before JetStream gives up on it (default 20). A message
    /// JetStream gives up on is still applied: it is a gap, filled from the log.
    pub max_deliver: i64,
    /// How long JetStream waits for an ack before redelivering (default 30 s).
    pub ack_wait: Duration,
    /// How long [`Projector::process_next`] waits for a first message before reporting
    /// [`Outcome::Idle`] (default 500 ms).
    pub idle_wait: Duration,
    /// After the first message of a batch, how long to keep collecting more before applying
    /// (default 10 ms). Each projection transaction has a fixed cost in PostgreSQL; at a
    /// moderate rate, waiting a few milliseconds turns many small transactions into one,
    /// at the price of that much more read-model lag. Live delivery does not wait for it.
    pub linger: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            stream_name: "CHAT_EVENTS".to_owned(),
            subject_prefix: "chat".to_owned(),
            consumer_name: None,
            batch: 500,
            max_deliver: 20,
            ack_wait: Duration::from_secs(30),
            idle_wait: Duration::from_millis(500),
            linger: Duration::from_millis(10),
        }
    }
}

/// The durable consumer name of a projection: its name with `_` as `-` (`read_models` →
/// `read-models`).
pub fn consumer_name(projection: &str) -> String {
    projection.replace('_', "-")
}

/// What one [`Projector::process_next`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A batch was committed with this many events applied (duplicates not counted).
    Applied(u64),
    /// Nothing arrived within `idle_wait`.
    Idle,
}

/// How long a JetStream API request (stream and consumer info, creating a consumer) may
/// take. A healthy server answers in milliseconds; the client's default of 10 s kept a
/// projection standing still 8 s after a network partition healed, waiting for the answer
/// to a request sent into the partition (the chaos battery, R5). A request that times out
/// fails the step, which is retried with a fresh consumer.
const JETSTREAM_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Check that the consumer still exists at most this often while idle.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// The pull's idle heartbeat: two missed ones end the message stream, which is then
/// re-created from the checkpoint. At 5 s a pull lost with a reset NATS connection kept a
/// projection standing still 8 s after the network healed (the chaos battery, R5).
const HEARTBEAT: Duration = Duration::from_secs(1);
const PULL_EXPIRES: Duration = Duration::from_secs(30);
/// The first pause after a failed step, doubled after each further failure up to
/// [`MAX_BACKOFF`], and back to this after any step that did not fail.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two failed steps. Short, so that a projection is at most this
/// late to notice that PostgreSQL or NATS is back (a longer outage once let it grow to 10 s,
/// and read models stayed stale that long after the database returned); a step that fails
/// at once costs one connection attempt and a log line per second.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

struct Live {
    /// The NATS connection the consumer was created on: a pull made on it ends with it.
    connection: Connection,
    consumer: consumer::PullConsumer,
    messages: consumer::pull::Stream,
    last_check: Instant,
    /// The projection's checkpoint as far as this runner knows (see [`crate::framework`]).
    checkpoint: i64,
}

/// The live runner of one projection: its durable consumer, batches, dead letters, metrics.
pub struct Projector {
    projection: Arc<dyn Projection>,
    pool: PgPool,
    /// The event log, read through its port (gaps, undecodable deliveries, its identity).
    log: PgEventStore,
    /// Opens the events' personal values (ADR 23).
    keyring: vault::Keyring,
    js: jetstream::Context,
    cfg: ProjectorConfig,
    consumer_name: String,
    metrics: Option<Metrics>,
    live: Option<Live>,
}

impl Projector {
    /// Runs `projection`; `pool` is the projector's database (its `dead_letters`), `log` the
    /// event log (the same pool in a single database).
    pub fn new(
        projection: Arc<dyn Projection>,
        pool: PgPool,
        log: PgPool,
        nats: async_nats::Client,
        cfg: ProjectorConfig,
    ) -> Self {
        let consumer_name = cfg
            .consumer_name
            .clone()
            .unwrap_or_else(|| consumer_name(projection.name()));
        Projector {
            projection,
            pool,
            keyring: vault::Keyring::new(log.clone(), false),
            log: PgEventStore::reader(log),
            js: {
                let mut js = jetstream::new(nats);
                js.set_timeout(JETSTREAM_REQUEST_TIMEOUT);
                js
            },
            cfg,
            consumer_name,
            metrics: None,
            live: None,
        }
    }

    /// Records into these metrics (labelled with the projection's name).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn config(&self) -> &ProjectorConfig {
        &self.cfg
    }

    pub fn projection(&self) -> &Arc<dyn Projection> {
        &self.projection
    }

    /// Deletes and re-creates the durable consumer so that it starts at `checkpoint + 1`.
    async fn connect(&mut self) -> anyhow::Result<()> {
        let name = self.projection.name();
        // Requests sent on a connection that is then lost are abandoned at once rather
        // than waited out (eventlog::reconnect).
        let connection = Connection::current(&self.js.client());
        let checkpoint = self
            .projection
            .checkpoint()
            .await
            .with_context(|| format!("read the checkpoint of {name}"))?;
        let stream = connection
            .guard(self.js.get_stream(&self.cfg.stream_name))
            .await?
            .with_context(|| format!("JetStream stream {}", self.cfg.stream_name))?;
        // A stream left over from another log would feed that log's events into the
        // projection; wait until the relay has replaced it.
        log::check_stream_identity(stream.cached_info(), &self.log).await?;
        // A consumer's start cannot be changed in place; one that does not exist is fine.
        let _ = connection
            .guard(stream.delete_consumer(&self.consumer_name))
            .await?;
        let batch = self.cfg.batch.max(1);
        let consumer: consumer::PullConsumer = connection
            .guard(stream.create_consumer(consumer::pull::Config {
                durable_name: Some(self.consumer_name.clone()),
                description: Some(format!("projection {name} (projector)")),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: u64::try_from(checkpoint + 1)?,
                },
                ack_policy: consumer::AckPolicy::All,
                ack_wait: self.cfg.ack_wait,
                max_deliver: self.cfg.max_deliver,
                max_ack_pending: i64::try_from(batch * 4)?,
                filter_subject: format!("{}.events.>", self.cfg.subject_prefix),
                ..Default::default()
            }))
            .await?
            .with_context(|| format!("create consumer {}", self.consumer_name))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .expires(PULL_EXPIRES)
            .heartbeat(HEARTBEAT)
            .messages()
            .await
            .context("start pulling")?;
        tracing::info!(
            projection = name,
            consumer = %self.consumer_name,
            start = checkpoint + 1,
            "JetStream consumer created"
        );
        self.live = Some(Live {
            connection,
            consumer,
            messages,
            last_check: Instant::now(),
            checkpoint,
        });
        Ok(())
    }

    /// Waits (up to `idle_wait`) for messages, has the projection commit one batch, then acks.
    /// On any error the consumer is dropped and re-created from the checkpoint on the next call.
    pub async fn process_next(&mut self) -> anyhow::Result<Outcome> {
        let result = self.step().await;
        if result.is_err() {
            self.live = None;
        }
        result
    }

    async fn step(&mut self) -> anyhow::Result<Outcome> {
        if self.live.is_none() {
            self.connect().await?;
        }
        let Some(live) = self.live.as_mut() else {
            anyhow::bail!("no consumer");
        };
        // A pull sent on a lost connection is never answered; its heartbeats would tell
        // only after two of them were missed.
        anyhow::ensure!(
            !live.connection.replaced(),
            "reconnected to NATS; re-creating the consumer"
        );
        let wait = live.connection.guard(live.messages.next());
        let first = match tokio::time::timeout(self.cfg.idle_wait, wait).await {
            Ok(Err(Reconnected)) => {
                anyhow::bail!("reconnected to NATS; re-creating the consumer")
            }
            Ok(Ok(next)) => next,
            Err(_) => {
                if live.last_check.elapsed() >= IDLE_CHECK {
                    live.last_check = Instant::now();
                    // The relay re-creates a lost stream, which drops the consumer with it.
                    live.consumer
                        .info()
                        .await
                        .context("consumer is gone; re-creating it")?;
                    self.refresh_lag().await;
                }
                return Ok(Outcome::Idle);
            }
        };
        let first = match first {
            None => anyhow::bail!("the consumer's message stream ended"),
            Some(Err(e)) => {
                return Err(anyhow::Error::new(e).context("pulling from the consumer"));
            }
            Some(Ok(m)) => m,
        };
        let mut messages = vec![first];
        let mut failed = None;
        let linger_until = tokio::time::Instant::now() + self.cfg.linger;
        while messages.len() < self.cfg.batch.max(1) {
            let next = match live.messages.next().now_or_never() {
                Some(next) => next,
                None => match tokio::time::timeout_at(linger_until, live.messages.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(m)) => messages.push(m),
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => break,
            }
        }
        let mut delivered: Vec<Delivered> = Vec::with_capacity(messages.len());
        for m in &messages {
            let info = m
                .info()
                .map_err(|e| anyhow::anyhow!("message without JetStream metadata: {e}"))?;
            let seq = i64::try_from(info.stream_sequence)?;
            // The stream sequence is the log position; a payload that does not say so (or does
            // not decode) is read from the log instead.
            let event = serde_json::from_slice::<RecordedEvent>(&m.payload)
                .ok()
                .filter(|e| e.position == seq);
            delivered.push((seq, event));
        }
        // At debug level, the batch's correlation ids: one grep for a request's id finds
        // the projection batch that applied it (docs/architecture.md, "Tracing").
        let correlation_ids = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            let events: Vec<&RecordedEvent> =
                delivered.iter().filter_map(|(_, e)| e.as_ref()).collect();
            eventlog::correlation_ids(&events)
        });
        let started = Instant::now();
        let report = framework::commit_delivered(
            &*self.projection,
            &self.pool,
            &self.log,
            &self.keyring,
            &mut live.checkpoint,
            delivered,
        )
        .await
        .context("apply a batch")?;
        self.record(&report, started.elapsed());
        if let Some(ids) = correlation_ids {
            tracing::debug!(
                projection = self.projection.name(),
                applied = report.applied,
                checkpoint = report.checkpoint,
                correlation_ids = %ids,
                "projection batch applied"
            );
        }
        // Committed: now ack. AckPolicy::All acks everything delivered up to the last message.
        if let Some(last) = messages.last()
            && let Err(e) = last.ack().await
        {
            tracing::warn!(error = %e, "ack failed; the batch will be redelivered and skipped");
        }
        if let Some(e) = failed {
            return Err(anyhow::Error::new(e).context("pulling from the consumer"));
        }
        Ok(Outcome::Applied(report.applied))
    }

    fn record(&self, report: &BatchReport, took: Duration) {
        let name = self.projection.name();
        if let Some(metrics) = &self.metrics {
            let label = [name];
            metrics
                .batch_seconds
                .with_label_values(&label)
                .observe(took.as_secs_f64());
            metrics
                .applied
                .with_label_values(&label)
                .inc_by(report.applied);
            metrics
                .dead_letters
                .with_label_values(&label)
                .inc_by(report.dead_lettered);
            metrics
                .gap_events
                .with_label_values(&label)
                .inc_by(report.from_log);
            metrics
                .duplicates
                .with_label_values(&label)
                .inc_by(report.duplicates);
            metrics
                .checkpoint
                .with_label_values(&label)
                .set(report.checkpoint);
        }
        if report.from_log > 0 {
            tracing::info!(
                projection = name,
                events = report.from_log,
                checkpoint = report.checkpoint,
                "filled a gap in the stream from the log"
            );
        }
    }

    /// Updates the lag gauge: stream last sequence − checkpoint.
    async fn refresh_lag(&self) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        if let Ok(checkpoint) = self.projection.checkpoint().await
            && let Ok(lag) = lag(&self.js, &self.cfg.stream_name, checkpoint).await
        {
            metrics
                .lag
                .with_label_values(&[self.projection.name()])
                .set(lag);
        }
    }

    /// Processes batches until `shutdown` completes. Errors are logged and retried with
    /// exponential back-off ([`backoff_after`]: 100 ms … 1 s, reset by any step that did
    /// not fail); it never returns an error on its own.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let connection = Connection::current(&self.js.client());
            let result = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = self.process_next() => r,
            };
            match result {
                Ok(_) => failures = 0,
                Err(e) => {
                    // Pooled connections idle since now may be as dead as the one that failed.
                    eventlog::pool::note_any(&e);
                    failures = failures.saturating_add(1);
                    let backoff = backoff_after(failures);
                    tracing::warn!(
                        projection = self.projection.name(),
                        error = %format!("{e:#}"),
                        retry_in = ?backoff,
                        "projector step failed"
                    );
                    // A new NATS connection is worth trying at once.
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        () = connection.pause(backoff) => {}
                    }
                }
            }
        }
    }
}

/// The pause after the `failures`-th failed step in a row (1 or more).
fn backoff_after(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(MAX_BACKOFF)
}

/// Runs every runner, each in its own task, until `shutdown` completes.
pub async fn run_all(
    runners: Vec<Projector>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for runner in runners {
        let mut stopped = stopped.clone();
        tasks.spawn(runner.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
    }
    shutdown.await;
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        done.context("a projection's runner panicked")??;
    }
    Ok(())
}

/// Stream last sequence − `checkpoint`.
pub async fn lag(
    js: &jetstream::Context,
    stream_name: &str,
    checkpoint: i64,
) -> anyhow::Result<i64> {
    let mut stream = js.get_stream(stream_name).await?;
    let last = i64::try_from(stream.info().await?.state.last_sequence)?;
    Ok((last - checkpoint).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_from_100_ms_and_never_exceeds_one_second() {
        let pauses: Vec<u128> = (1..=8).map(|n| backoff_after(n).as_millis()).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        assert_eq!(backoff_after(u32::MAX), MAX_BACKOFF);
        assert_eq!(backoff_after(0), FIRST_BACKOFF);
    }
}
