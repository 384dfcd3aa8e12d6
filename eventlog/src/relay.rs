//! The relay: publishes the log to a JetStream stream, in position order, at least once
//! (docs/architecture.md D2: JetStream is the transport, PostgreSQL the source of truth).
//!
//! Invariant: the stream's sequence equals the event's position; the stream holds positions
//! `1..=N` exactly. Every publish carries `Nats-Expected-Last-Sequence: position - 1`, so a message
//! can only ever land at its own position, and `Nats-Msg-Id: event_id`, so a re-publish inside the
//! duplicate window is harmless. The resume point is the stream's own `last_sequence`; there is
//! no separate checkpoint. If the stream is lost, truncated or otherwise inconsistent with the
//! log, it is deleted, re-created and re-filled from position 1.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::{self, context::GetStreamErrorKind, stream};
use async_nats::{HeaderMap, header};
use futures::{FutureExt, Stream, StreamExt};
use sqlx::postgres::{PgListener, PgNotification};
use sqlx::{Connection as _, PgConnection, PgPool};

use crate::postgres::{APPENDED_CHANNEL, read_all};
use crate::recent::Recent;
use crate::reconnect::Connection;
use crate::store::RecordedEvent;
use crate::store::{EventStore, StoreError};

/// How long a JetStream API request (stream info, creating the stream) or a publish's ack
/// may take. A healthy server answers in milliseconds; async-nats' default of 5 s kept the
/// stream that much behind after a network partition held the answer (the chaos battery,
/// R5). A request that times out fails the round, which is retried.
const JETSTREAM_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a relay that does not hold the advisory lock tries again.
const LOCK_RETRY: Duration = Duration::from_secs(1);
/// How long a relay that heard of a commit waits for this process's committer to hand the
/// commit's events over before reading them from the log instead.
const HAND_OVER_WAIT: Duration = Duration::from_millis(50);
/// Consecutive failed attempts inside one [`Relay::publish_pending`] before it gives up.
const MAX_ATTEMPTS: usize = 3;

pub const HEADER_POSITION: &str = "Chat-Position";
pub const HEADER_STREAM_ID: &str = "Chat-Stream-Id";
pub const HEADER_VERSION: &str = "Chat-Version";
pub const HEADER_EVENT_TYPE: &str = "Chat-Event-Type";

#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// JetStream stream name.
    pub stream_name: String,
    /// Subjects are `{subject_prefix}.events.{stream_type}.{stream_id}`.
    pub subject_prefix: String,
    /// Events read from the log and published (pipelined) per round (default 1000).
    pub batch: i64,
    /// Fallback poll interval when no NOTIFY arrives (default 1 s).
    pub poll_interval: Duration,
    /// Key of the session-level advisory lock that elects the single active relay.
    pub lock_key: i64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            stream_name: "CHAT_EVENTS".to_owned(),
            subject_prefix: "chat".to_owned(),
            batch: 1000,
            poll_interval: Duration::from_secs(1),
            // "evntlog\x01"
            lock_key: 0x6576_6e74_6c6f_6701,
        }
    }
}

/// `{prefix}.events.{stream_type}.{stream_id}`, with '.', '*', '>' and whitespace in the type
/// and id replaced by '_' (an empty token becomes "_").
pub fn subject_for(prefix: &str, stream_type: &str, stream_id: &str) -> String {
    format!(
        "{prefix}.events.{}.{}",
        sanitize_token(stream_type),
        sanitize_token(stream_id)
    )
}

fn sanitize_token(s: &str) -> String {
    if s.is_empty() {
        return "_".to_owned();
    }
    s.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The description of the stream that carries the log `log_id`. A stream with another
/// description holds another log's events (or predates log identities): the relay replaces
/// it, and consumers must not apply it ([`check_stream_identity`]).
pub fn stream_description(log_id: uuid::Uuid) -> String {
    format!("chat event log {log_id}")
}

/// The distinct correlation ids of `events`, comma-separated, in order (for debug logs).
pub fn correlation_ids<E: std::borrow::Borrow<RecordedEvent>>(events: &[E]) -> String {
    let mut out = String::new();
    let mut last = None;
    for ev in events {
        let id = ev.borrow().correlation_id;
        if last != Some(id) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&id.to_string());
            last = Some(id);
        }
    }
    out
}

/// Why a consumer must not read a JetStream stream ([`check_stream_identity`]).
#[derive(thiserror::Error, Debug)]
pub enum StreamIdentityError {
    #[error("cannot read the log's identity")]
    Store(#[from] StoreError),
    #[error(
        "JetStream stream {stream} is not this log's (description {found:?}, expected \
         {expected:?}); waiting for the relay to replace it"
    )]
    OtherLog {
        stream: String,
        found: String,
        expected: String,
    },
}

/// Fails unless `info` is the stream of the log `log`: consumers call this before reading,
/// so that a stream left over from another log is never applied (the relay replaces it).
pub async fn check_stream_identity(
    info: &stream::Info,
    log: &impl EventStore,
) -> Result<(), StreamIdentityError> {
    let log_id = log.log_id().await?;
    if is_stream_of(info, log_id) {
        return Ok(());
    }
    Err(StreamIdentityError::OtherLog {
        stream: info.config.name.clone(),
        found: info.config.description.clone().unwrap_or_default(),
        expected: stream_description(log_id),
    })
}

/// Whether the stream described by `info` carries the log `log_id`.
fn is_stream_of(info: &stream::Info, log_id: uuid::Uuid) -> bool {
    info.config.description.as_deref() == Some(stream_description(log_id).as_str())
}

/// The stream configuration the relay creates for the log `log_id`.
pub fn stream_config(
    stream_name: &str,
    subject_prefix: &str,
    log_id: uuid::Uuid,
) -> stream::Config {
    stream::Config {
        name: stream_name.to_owned(),
        description: Some(stream_description(log_id)),
        subjects: vec![format!("{subject_prefix}.events.>")],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        max_age: Duration::ZERO,
        num_replicas: 1,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

pub struct Relay {
    pool: PgPool,
    client: async_nats::Client,
    js: jetstream::Context,
    config: RelayConfig,
    /// The next position to publish as of the last successful round, and when the stream's
    /// state was last checked against the log. Within one poll interval of that check a round
    /// trusts it instead of asking PostgreSQL and JetStream again: every publish still carries
    /// `Nats-Expected-Last-Sequence`, so a stream changed behind our back fails the publish, and
    /// any failure clears this.
    resume: Option<(i64, Instant)>,
    /// Events this process committed, published without reading them back ([`Self::with_recent`]).
    recent: Option<Recent>,
    /// The highest log head known: from the last check against the log and from every
    /// commit's NOTIFY (its payload is the new head). With `recent`, a round publishes up to
    /// here and stops without asking the log whether there is more; a commit it has not
    /// heard of yet wakes it again.
    known_head: i64,
}

impl Relay {
    pub fn new(pool: PgPool, client: async_nats::Client, config: RelayConfig) -> Self {
        Relay {
            pool,
            js: {
                let mut js = jetstream::new(client.clone());
                js.set_timeout(JETSTREAM_REQUEST_TIMEOUT);
                js
            },
            client,
            config,
            resume: None,
            recent: None,
            known_head: 0,
        }
    }

    /// Publishes the events this process's group committer commits from memory (the store's
    /// [`crate::GroupCommitConfig::recent`], when it has one); others are still read from the
    /// log.
    pub fn with_recent(mut self, recent: Option<Recent>) -> Self {
        self.recent = recent;
        self
    }

    fn heard(&mut self, notification: &PgNotification) {
        if let Ok(head) = notification.payload().parse::<i64>() {
            self.known_head = self.known_head.max(head);
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Runs until `shutdown` completes: waits to become the single active relay (session-level
    /// advisory lock, retried every second), then publishes every committed event, waking on
    /// NOTIFY and, as a fallback, every `poll_interval`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let mut lock_conn = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                conn = self.acquire_lock() => conn,
            };
            tracing::info!(
                stream = %self.config.stream_name,
                lock_key = self.config.lock_key,
                "relay is active"
            );
            let outcome = tokio::select! {
                _ = &mut shutdown => None,
                r = self.active(&mut lock_conn) => Some(r),
            };
            // Closing the session releases the lock; unlock explicitly first to be prompt.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.config.lock_key)
                .execute(&mut lock_conn)
                .await;
            let _ = lock_conn.close().await;
            match outcome {
                None => return Ok(()),
                Some(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "relay lost its lock connection; re-electing");
                    tokio::select! {
                        _ = &mut shutdown => return Ok(()),
                        _ = tokio::time::sleep(LOCK_RETRY) => {}
                    }
                }
                Some(Ok(())) => {}
            }
        }
    }

    /// Loops until it holds the advisory lock on a dedicated connection (not a pooled one: if the
    /// relay dies, the connection closes and the lock goes with it).
    async fn acquire_lock(&self) -> PgConnection {
        let mut logged = false;
        loop {
            match self.try_lock().await {
                Ok(Some(conn)) => return conn,
                Ok(None) => {
                    if !logged {
                        tracing::info!(
                            lock_key = self.config.lock_key,
                            "another relay is active; standing by"
                        );
                        logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "relay could not try the advisory lock"),
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    async fn try_lock(&self) -> Result<Option<PgConnection>, sqlx::Error> {
        let options = self.pool.connect_options();
        let mut conn = PgConnection::connect_with(&options).await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(self.config.lock_key)
            .fetch_one(&mut conn)
            .await?;
        if locked {
            Ok(Some(conn))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// The active relay's loop. Returns only with an error (the lock connection was lost).
    async fn active(&mut self, lock_conn: &mut PgConnection) -> anyhow::Result<()> {
        // Another relay may have published while this one did not hold the lock.
        self.resume = None;
        let mut notifications = self.listen().await;
        let health_every = self.config.poll_interval.max(Duration::from_secs(1));
        let mut last_health = Instant::now();
        loop {
            // LISTEN is in place before this, so no commit can slip between a round and the wait.
            let mut failed = false;
            let connection = Connection::current(&self.client);
            match self.round().await {
                Ok(n) if n > 0 => tracing::debug!(published = n, "relay round"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "relay round failed; will retry");
                    failed = true;
                }
            }
            if last_health.elapsed() >= health_every {
                sqlx::query("SELECT 1")
                    .execute(&mut *lock_conn)
                    .await
                    .context("advisory lock connection")?;
                last_health = Instant::now();
            }
            if failed {
                // Do not spin on a persistent failure (NATS or PostgreSQL down), but retry
                // at once on a new NATS connection.
                connection
                    .pause(LOCK_RETRY.min(self.config.poll_interval))
                    .await;
                continue;
            }
            let wait = self.config.poll_interval;
            match notifications.as_mut() {
                Some(stream) => {
                    tokio::select! {
                        n = stream.next() => match n {
                            Some(Ok(n)) => {
                                self.heard(&n);
                                // Coalesce whatever else is already buffered.
                                while let Some(Some(Ok(n))) = stream.next().now_or_never() {
                                    self.heard(&n);
                                }
                            }
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "relay LISTEN connection failed; reconnecting");
                                notifications = self.listen().await;
                            }
                            None => notifications = self.listen().await,
                        },
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                None => {
                    tokio::time::sleep(wait).await;
                    notifications = self.listen().await;
                }
            }
        }
    }

    /// LISTENs on [`APPENDED_CHANNEL`]; `None` (after a warning) if that fails, in which case the
    /// poll interval alone drives the relay until the next attempt.
    async fn listen(
        &self,
    ) -> Option<std::pin::Pin<Box<dyn Stream<Item = Result<PgNotification, sqlx::Error>> + Send>>>
    {
        let attempt = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(APPENDED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match attempt.await {
            Ok(listener) => Some(Box::pin(listener.into_stream())),
            Err(e) => {
                tracing::warn!(error = %e, "relay could not LISTEN; polling only");
                None
            }
        }
    }

    /// One step: brings the stream in line with the log (creating, or deleting and re-creating
    /// it, as needed) and publishes everything committed so far. Returns the number of events
    /// published (acknowledged, including duplicates the server dropped).
    pub async fn publish_pending(&mut self) -> anyhow::Result<usize> {
        self.resume = None;
        self.round().await
    }

    /// [`Self::publish_pending`], except that within one poll interval of the last check of
    /// the stream against the log (and after a successful round) it publishes from where that
    /// round ended without checking again: the active loop's path, woken by every commit.
    /// Anything that changed the stream meanwhile either fails the next publish (its expected
    /// last sequence) or is found by the check at most one poll interval later.
    async fn round(&mut self) -> anyhow::Result<usize> {
        let mut published = 0usize;
        let mut failures = 0usize;
        loop {
            let recent = self
                .resume
                .take()
                .filter(|(_, checked)| checked.elapsed() < self.config.poll_interval);
            let synced = match recent {
                Some(known) => Ok(known),
                None => self.sync_stream().await.map(|(next, head)| {
                    self.known_head = self.known_head.max(head);
                    (next, Instant::now())
                }),
            };
            let (next, checked) = match synced {
                Ok(known) => known,
                Err(e) => {
                    failures += 1;
                    if failures >= MAX_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::warn!(error = %format!("{e:#}"), "relay could not read the stream state; retrying");
                    continue;
                }
            };
            let mut count = 0usize;
            let result = self.publish_from(next, &mut count).await;
            published += count;
            match result {
                Ok(()) => {
                    let count = i64::try_from(count)?;
                    self.resume = Some((next + count, checked));
                    return Ok(published);
                }
                Err(e) => {
                    // Drop whatever is in flight, re-read the stream and resume from there.
                    if count > 0 {
                        failures = 0;
                    }
                    failures += 1;
                    if failures >= MAX_ATTEMPTS {
                        return Err(e);
                    }
                    tracing::info!(error = %format!("{e:#}"), "relay publish failed; resyncing with the stream");
                }
            }
        }
    }

    /// Makes sure the stream exists and is consistent with the log; returns the next position
    /// to publish (`last_sequence + 1`) and the log head it read.
    async fn sync_stream(&self) -> anyhow::Result<(i64, i64)> {
        // The head and the log's identity in one round trip.
        let (head, log_id): (i64, uuid::Uuid) =
            sqlx::query_as("SELECT h.position, i.log_id FROM log_head h CROSS JOIN log_identity i")
                .fetch_one(&self.pool)
                .await
                .context("read the log's head and identity")?;
        let name = &self.config.stream_name;
        let connection = Connection::current(&self.client);
        let info = match connection.guard(self.js.get_stream(name)).await? {
            Ok(stream) => stream.cached_info().clone(),
            Err(e) => {
                if let GetStreamErrorKind::JetStream(js) = e.kind()
                    && js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                {
                    tracing::info!(stream = %name, "JetStream stream missing; creating it and publishing from position 1");
                    self.create_stream(log_id).await?;
                    return Ok((1, head));
                }
                return Err(anyhow::Error::new(e).context("get JetStream stream info"));
            }
        };
        let st = &info.state;
        let consistent = if st.messages == 0 {
            st.last_sequence == 0
        } else {
            st.first_sequence == 1
                && st.last_sequence >= st.first_sequence
                && st.messages == st.last_sequence - st.first_sequence + 1
        };
        let beyond_head = i64::try_from(st.last_sequence).map_or(true, |last| last > head);
        // Another log's stream may look consistent (positions 1..n, n <= head) and still
        // hold other events: its description says whose it is.
        if !consistent || beyond_head || !is_stream_of(&info, log_id) {
            tracing::warn!(
                stream = %name,
                messages = st.messages,
                first_sequence = st.first_sequence,
                last_sequence = st.last_sequence,
                log_head = head,
                description = info.config.description.as_deref().unwrap_or(""),
                %log_id,
                "JetStream stream is inconsistent with the log or another log's; deleting and re-creating it, re-publishing from position 1"
            );
            match self.js.delete_stream(name).await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "deleting the inconsistent stream failed"),
            }
            self.create_stream(log_id).await?;
            return Ok((1, head));
        }
        Ok((i64::try_from(st.last_sequence)? + 1, head))
    }

    async fn create_stream(&self, log_id: uuid::Uuid) -> anyhow::Result<()> {
        self.js
            .create_stream(stream_config(
                &self.config.stream_name,
                &self.config.subject_prefix,
                log_id,
            ))
            .await
            .context("create JetStream stream")?;
        Ok(())
    }

    /// Publishes every event from position `next` on, `batch` at a time. Stops at the first
    /// failure.
    ///
    /// Only the last event of a batch is published with a reply subject and its ack awaited;
    /// the others go out as plain publishes, in order on the same connection. That is enough:
    /// every message carries `Nats-Expected-Last-Sequence: position - 1`, so JetStream stores
    /// the event at position `p` only at sequence `p` and only right after `p - 1`. If any
    /// earlier message of the batch was not stored, the last one's expectation fails and so
    /// does its ack; an ack at sequence `last` means the stream holds every position up to it.
    /// (A per-message ack would cost a reply inbox and a response per event.)
    async fn publish_from(&self, mut next: i64, count: &mut usize) -> anyhow::Result<()> {
        let batch = self.config.batch.max(1);
        loop {
            let cached = match &self.recent {
                Some(_) if next > self.known_head => return Ok(()),
                Some(recent) => {
                    recent
                        .run_from_settled(next, usize::try_from(batch)?, HAND_OVER_WAIT)
                        .await
                }
                None => Vec::new(),
            };
            let from_log = cached.is_empty();
            let events = if from_log {
                read_all(&self.pool, next - 1, batch)
                    .await
                    .context("read the log")?
                    .into_iter()
                    .map(Arc::new)
                    .collect()
            } else {
                cached
            };
            let Some(last) = events.last() else {
                return Ok(());
            };
            let last_position = last.position;
            // The ack of a publish sent before a reconnection never comes; waiting out the
            // request time-out kept the stream that much late after NATS returned (the chaos
            // battery, R3). The caller resyncs with the stream instead.
            let connection = Connection::current(&self.client);
            let mut ack = None;
            for (i, ev) in events.iter().enumerate() {
                let expected = next + i64::try_from(i)?;
                anyhow::ensure!(
                    ev.position == expected,
                    "gap in the log: expected position {expected}, read {}",
                    ev.position
                );
                let (subject, headers, payload) = self.message(ev)?;
                if ev.position == last_position {
                    let publish = jetstream::message::PublishMessage::build()
                        .payload(payload)
                        .headers(headers);
                    ack = Some(
                        self.js
                            .send_publish(subject, publish)
                            .await
                            .with_context(|| format!("publish position {}", ev.position))?,
                    );
                } else {
                    self.client
                        .publish_with_headers(subject, headers, payload)
                        .await
                        .with_context(|| format!("publish position {}", ev.position))?;
                }
            }
            if let Some(ack) = ack {
                let ack = connection
                    .guard(ack.into_future())
                    .await
                    .map_err(anyhow::Error::new)
                    .and_then(|ack| Ok(ack?))
                    .with_context(|| format!("ack for position {last_position}"))?;
                if tracing::enabled!(tracing::Level::DEBUG) {
                    tracing::debug!(
                        first = next,
                        last = last_position,
                        correlation_ids = %correlation_ids(&events),
                        "relay published"
                    );
                }
                anyhow::ensure!(
                    i64::try_from(ack.sequence)? == last_position,
                    "position {last_position} acknowledged at stream sequence {} (duplicate: {})",
                    ack.sequence,
                    ack.duplicate
                );
                *count += events.len();
            }
            next = last_position + 1;
            if from_log && i64::try_from(events.len())? < batch {
                return Ok(());
            }
        }
    }

    fn subject(&self, ev: &RecordedEvent) -> String {
        subject_for(&self.config.subject_prefix, &ev.stream_type, &ev.stream_id)
    }

    /// Subject, headers and payload of the message that carries `ev`.
    fn message(&self, ev: &RecordedEvent) -> anyhow::Result<(String, HeaderMap, bytes::Bytes)> {
        let payload = serde_json::to_vec(ev)?;
        let mut headers = HeaderMap::new();
        headers.insert(header::NATS_MESSAGE_ID, ev.event_id.to_string());
        headers.insert(
            header::NATS_EXPECTED_LAST_SEQUENCE,
            u64::try_from(ev.position - 1)?.to_string(),
        );
        headers.insert(HEADER_POSITION, ev.position.to_string());
        headers.insert(HEADER_STREAM_ID, ev.stream_id.as_str());
        headers.insert(HEADER_VERSION, ev.version.to_string());
        headers.insert(HEADER_EVENT_TYPE, ev.event_type.as_str());
        Ok((self.subject(ev), headers, payload.into()))
    }
}
