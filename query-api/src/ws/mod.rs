//! The WebSocket live feed (`GET /v1/ws`), typing and ephemeral fan-out, and presence.
//!
//! * Live room events come from the JetStream event stream (one ordered consumer
//!   per node on `{prefix}.events.room.>`), not from the read models, so delivery
//!   does not wait for projection (docs/architecture.md D6).
//! * Membership is tracked per subscribed room "as the stream says it is now": a
//!   snapshot folded from the PostgreSQL log (see [`membership`]) plus the live
//!   membership events applied in stream order; a kick or leave ends the user's
//!   subscriptions to the room at that event ([`hub`]).
//! * Resume: `subscribe` with `after_version` holds back live events of the room
//!   for that connection, back-fills from the log, sends `subscribed` (whose
//!   `version` is the last back-filled one), then the held-back live events with a
//!   higher version, then switches to live — per-room order, no gap, no duplicate.
//!   More than [`MAX_BACKFILL`] missed events: `resync` instead of a back-fill.
//! * Epochs: the REST reads a client reloads from belong to one build of the read models,
//!   its epoch ([`crate::epoch`]). A resume whose `epoch` is not the current one gets
//!   `resync` (reason `epoch`) instead of a back-fill, and when the epoch changes every
//!   subscription on the node gets `resync` (reason `epoch`) and stays live.
//! * Typing and ephemeral messages travel over core NATS and are never stored;
//!   presence is heartbeats over core NATS with a timeout ([`presence`]).

pub mod batch;
pub mod connection;
pub mod hub;
mod member_updates;
pub mod membership;
pub mod notify;
pub mod presence;
pub mod protocol;

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::ws::hub::Hub;
use crate::ws::notify::Notifier;
use crate::ws::presence::Presence;
use crate::ws::protocol::{Frame, LiveEvent};
use async_nats::jetstream;
use axum::Router;
use axum::routing::get;
use chrono::{DateTime, Utc};
use eventlog::reconnect::{Connection, Reconnected};
use eventlog::{EventStore, PgEventStore, RecordedEvent};
use events::{RoomId, UserId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Most missed events a `subscribe` back-fills; beyond it the client gets `resync`.
pub const MAX_BACKFILL: i64 = 1000;

/// Handle to this node's live fan-out (cheap to clone). Its background tasks end
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

struct Inner {
    hub: Arc<Hub>,
    notifier: Arc<Notifier>,
    presence: Arc<Presence>,
    log: PgEventStore,
    /// Opens the events' personal values (ADR 23).
    keyring: Arc<vault::Keyring>,
    nats: async_nats::Client,
    prefix: String,
    _stop: watch::Sender<()>,
}

/// What `GET /v1/presence` reports for one user.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PresenceInfo {
    pub user_id: UserId,
    /// `online` or `offline`.
    pub status: &'static str,
    pub last_seen: Option<DateTime<Utc>>,
}

/// A typing indicator or ephemeral message as command-api (or this node) publishes it.
#[derive(Deserialize)]
struct EphemeralMsg {
    #[serde(rename = "type")]
    kind: String,
    room_id: RoomId,
    user_id: UserId,
    #[serde(default)]
    body: Option<String>,
}

impl Live {
    pub async fn start(
        settings: Arc<Settings>,
        pool: PgPool,
        log_pool: PgPool,
        nats: async_nats::Client,
        // Connections count their frames and closes in `AppState::metrics`.
        _metrics: Metrics,
        // The read models' epoch: every change makes subscribed sockets resync.
        mut epoch: watch::Receiver<i64>,
    ) -> anyhow::Result<Live> {
        let keyring = Arc::new(vault::Keyring::new(log_pool.clone(), false));
        let log = PgEventStore::reader(log_pool);
        // Marked seen here, so that any later change reaches `follow_epoch`.
        let current_epoch = *epoch.borrow_and_update();
        let hub = Hub::new(
            log.clone(),
            settings.ws_queue_frames,
            current_epoch,
            Duration::from_millis(settings.typing_batch_ms),
        );
        let timeout = Duration::from_secs(settings.presence_timeout_secs.max(1));
        let read_models = pool.clone();
        let (presence, changes) = Presence::new(
            pool,
            nats.clone(),
            &settings.service.subject_prefix,
            timeout,
        );
        let (stop, stopped) = watch::channel(());
        let prefix = settings.service.subject_prefix.clone();

        // Subscriptions first, so nothing published after `start` returns is missed.
        let ephemeral = nats
            .subscribe(format!("{prefix}.ephemeral.room.>"))
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to ephemeral traffic: {e}"))?;
        let announcements = nats
            .subscribe(presence.subject().to_owned())
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to presence: {e}"))?;
        // Live events start after the log's head now: a room loaded from the log
        // later is current up to its load, and everything after start arrives here.
        let start_after = log.head_position().await?;
        let notifier = Notifier::new(read_models, hub.clone(), start_after);

        tokio::spawn(until_stopped(
            stopped.clone(),
            consume_events(
                hub.clone(),
                notifier.clone(),
                nats.clone(),
                (log.clone(), keyring.clone()),
                settings.service.stream_name.clone(),
                // Rooms' events, and users' (a new name, an erasure: `member_updates`).
                format!("{prefix}.events.>"),
                start_after,
            ),
        ));
        tokio::spawn(until_stopped(
            stopped.clone(),
            forward_ephemeral(hub.clone(), ephemeral),
        ));
        tokio::spawn(until_stopped(
            stopped.clone(),
            follow_epoch(hub.clone(), epoch),
        ));
        tokio::spawn(until_stopped(
            stopped.clone(),
            notify_in_windows(
                hub.clone(),
                presence.clone(),
                changes,
                Duration::from_millis(settings.presence_batch_ms),
            ),
        ));
        tokio::spawn(until_stopped(
            stopped.clone(),
            presence_loop(
                hub.clone(),
                presence.clone(),
                announcements,
                Duration::from_secs(settings.presence_heartbeat_secs.max(1)),
                timeout,
            ),
        ));
        Ok(Live {
            inner: Arc::new(Inner {
                hub,
                notifier,
                presence,
                log,
                keyring,
                nats,
                prefix,
                _stop: stop,
            }),
        })
    }

    /// Presence of these users as this node knows it (all nodes' heartbeats).
    /// The caller filters by who may see whom.
    pub async fn presence_of(&self, users: &[UserId]) -> Vec<PresenceInfo> {
        let presence = &self.inner.presence;
        let online: Vec<Option<DateTime<Utc>>> =
            users.iter().map(|u| presence.online(*u)).collect();
        let offline: Vec<UserId> = users
            .iter()
            .zip(&online)
            .filter(|(_, o)| o.is_none())
            .map(|(u, _)| *u)
            .collect();
        let stored = if offline.is_empty() {
            Default::default()
        } else {
            presence.last_seen(&offline).await
        };
        users
            .iter()
            .zip(online)
            .map(|(u, o)| match o {
                Some(at) => PresenceInfo {
                    user_id: *u,
                    status: "online",
                    last_seen: Some(at),
                },
                None => PresenceInfo {
                    user_id: *u,
                    status: "offline",
                    last_seen: stored.get(u).copied(),
                },
            })
            .collect()
    }

    /// Subscriptions to a room on this node.
    pub fn subscriber_count(&self, room: RoomId) -> usize {
        self.inner.hub.subscriber_count(room)
    }

    /// Closes every socket with 1001 going-away ([`hub::GOING_AWAY`]) and waits until they
    /// are closed, at most `within`: a node shutting down tells its clients to reconnect
    /// instead of leaving them to notice a dead connection.
    pub async fn close_all(&self, within: Duration) {
        let hub = &self.inner.hub;
        hub.close_all(hub::GOING_AWAY);
        let deadline = tokio::time::Instant::now() + within;
        while hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let open = hub.connection_count();
        if open > 0 {
            tracing::warn!(open, "sockets still open after the shutdown's close");
        }
    }

    /// Open WebSocket connections on this node.
    pub fn connection_count(&self) -> usize {
        self.inner.hub.connection_count()
    }

    /// The read models' epoch subscriptions on this node start in (the hub's copy of
    /// `AppState::epoch`, updated right after it).
    pub fn epoch(&self) -> i64 {
        self.inner.hub.epoch()
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Closes every socket of `user` on this node (their account was deactivated).
    pub fn close_user(&self, user: UserId) {
        self.inner.hub.close_user(user, crate::ws::hub::DEACTIVATED);
    }

    /// Users online on any node (heartbeats within the presence timeout).
    pub fn online_users(&self) -> usize {
        self.inner.presence.online_count()
    }

    /// Users whose notification settings this node is still loading (tests wait for 0).
    pub fn notifications_loading(&self) -> usize {
        self.inner.notifier.loading()
    }

    pub(crate) fn notifier(&self) -> &Arc<Notifier> {
        &self.inner.notifier
    }

    pub(crate) fn presence(&self) -> &Arc<Presence> {
        &self.inner.presence
    }

    pub(crate) fn log(&self) -> &PgEventStore {
        &self.inner.log
    }

    /// The data keys events are opened with (ADR 23).
    pub fn keyring(&self) -> &vault::Keyring {
        &self.inner.keyring
    }

    /// Publishes on the room's core NATS ephemeral subject (as command-api does).
    pub(crate) async fn publish_ephemeral(
        &self,
        room_id: RoomId,
        payload: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let subject = format!("{}.ephemeral.room.{room_id}", self.inner.prefix);
        let bytes = serde_json::to_vec(payload)?;
        self.inner.nats.publish(subject, bytes.into()).await?;
        Ok(())
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/ws", get(connection::handler))
}

async fn until_stopped(mut stopped: watch::Receiver<()>, task: impl Future<Output = ()>) {
    tokio::select! {
        _ = stopped.changed() => {}
        _ = task => {}
    }
}

/// The node's one ordered JetStream consumer of room events, re-created from the
/// last position seen when it fails (stream sequence == log position).
async fn consume_events(
    hub: Arc<Hub>,
    notifier: Arc<Notifier>,
    nats: async_nats::Client,
    (log, keyring): (PgEventStore, Arc<vault::Keyring>),
    stream_name: String,
    filter: String,
    start_after: i64,
) {
    let mut js = jetstream::new(nats.clone());
    js.set_timeout(JETSTREAM_REQUEST_TIMEOUT);
    let mut last = start_after;
    let retry = Duration::from_millis(500);
    loop {
        // Requests and waits on a connection that is then lost end at once
        // (eventlog::reconnect): after a reconnection (NATS restarted, a partition healed)
        // the server may have lost this ephemeral consumer, and waiting for missed
        // heartbeats took up to 10 s (the chaos battery, R3 and R5).
        let connection = Connection::current(&nats);
        let Ok(stream) = connection.guard(js.get_stream(&stream_name)).await else {
            continue;
        };
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "event stream not available yet");
                connection.pause(retry).await;
                continue;
            }
        };
        // Another log's stream (left over, not yet replaced by the relay) must not reach
        // the sockets.
        if let Err(e) = eventlog::check_stream_identity(stream.cached_info(), &log).await {
            tracing::warn!(error = %e, "not following the event stream yet");
            tokio::time::sleep(retry).await;
            continue;
        }
        let config = jetstream::consumer::push::OrderedConfig {
            deliver_subject: nats.new_inbox(),
            filter_subject: filter.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: u64::try_from(last.saturating_add(1)).unwrap_or(1),
            },
            ..Default::default()
        };
        let started = connection
            .guard(async {
                let consumer = stream.create_consumer(config).await?;
                Ok::<_, anyhow::Error>(consumer.messages().await?)
            })
            .await;
        let mut messages = match started {
            Err(Reconnected) => continue,
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "starting the live consumer failed");
                connection.pause(retry).await;
                continue;
            }
        };
        let created = stream.cached_info().created;
        let mut check = tokio::time::interval(STREAM_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                msg = messages.next() => msg,
                () = connection.until_replaced() => {
                    tracing::info!("reconnected to NATS; re-creating the live consumer");
                    break;
                }
                _ = check.tick() => {
                    if replaced(&js, &stream_name, created).await {
                        tracing::warn!("the event stream was deleted or re-created; following it again");
                        break;
                    }
                    continue;
                }
            };
            let msg = match msg {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "live consumer error; re-creating it");
                    break;
                }
                None => break,
            };
            let mut rec: RecordedEvent = match serde_json::from_slice(&msg.payload) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, subject = %msg.subject, "undecodable event on the stream");
                    continue;
                }
            };
            if rec.position <= last {
                continue;
            }
            last = rec.position;
            // Rooms nobody here subscribes to are skipped before decoding (if a
            // subscription starts right after, its snapshot is read from the log,
            // which already holds this event).
            notifier.saw(rec.position);
            if rec.stream_type == <events::user::UserEvent as events::StoredEvent>::STREAM_TYPE {
                // Opened in log order: a `UserErased` forgets the user's keys here too.
                if member_updates::changes_members(&rec.event_type) {
                    match keyring.open_event(&mut rec).await {
                        Ok(()) => member_updates::on_user_event(&hub, &rec),
                        Err(e) => {
                            tracing::warn!(error = %e, position = rec.position, "cannot open a user event")
                        }
                    }
                }
                continue;
            }
            // Notifications are told of every room's events while anyone is connected here.
            let tracked = RoomId::from_stream_id(&rec.stream_id).is_some_and(|id| hub.tracks(id));
            if !tracked && !notifier.active() {
                continue;
            }
            if let Err(e) = keyring.open_event(&mut rec).await {
                // The keys could not be read (the database is away): the event is sent when
                // a socket resumes, from the log.
                tracing::warn!(error = %e, position = rec.position, "cannot open a live event");
                continue;
            }
            match LiveEvent::decode(&rec) {
                Ok(Some(ev)) => {
                    let ev = Arc::new(ev);
                    notifier.on_event(&ev);
                    if tracked {
                        hub.on_event(ev);
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "undecodable room event"),
            }
        }
        connection.pause(retry).await;
    }
}

/// How long a JetStream API request (stream info, creating the consumer) may take. A
/// healthy server answers in milliseconds; the default of 10 s kept the live feed that
/// much behind after a network partition held the answer (the chaos battery, R5).
const JETSTREAM_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the live consumer checks that its stream is still the one it follows. A
/// deleted stream shows to an ordered push consumer only as missed heartbeats, 10 s later
/// (async-nats' fixed 5 s idle heartbeat, twice); the relay re-creates and re-fills the
/// stream within seconds, and the live feed should follow as soon (the chaos battery, R3b).
const STREAM_CHECK: Duration = Duration::from_secs(1);

/// Whether the stream `name` is gone or is not the one created at `created`. An answer
/// that does not come (NATS down) is not a replacement: the consumer's own errors cover it.
async fn replaced(
    js: &jetstream::Context,
    name: &str,
    created: async_nats::datetime::DateTime,
) -> bool {
    match tokio::time::timeout(STREAM_CHECK, js.get_stream(name)).await {
        Ok(Ok(s)) => s.cached_info().created != created,
        Ok(Err(e)) => matches!(
            e.kind(),
            jetstream::context::GetStreamErrorKind::JetStream(_)
        ),
        Err(_) => false,
    }
}

/// Hands every change of the read models' epoch to the hub, which tells the subscribed
/// sockets to resync.
async fn follow_epoch(hub: Arc<Hub>, mut epoch: watch::Receiver<i64>) {
    while epoch.changed().await.is_ok() {
        let current = *epoch.borrow_and_update();
        hub.on_epoch(current);
    }
}

async fn forward_ephemeral(hub: Arc<Hub>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let m: EphemeralMsg = match serde_json::from_slice(&msg.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring a malformed ephemeral message");
                continue;
            }
        };
        match (m.kind.as_str(), m.body) {
            ("typing", _) => hub.on_typing(m.room_id, m.user_id),
            ("ephemeral", Some(body)) => hub.on_ephemeral(
                m.room_id,
                m.user_id,
                Frame::new(
                    "ephemeral",
                    &serde_json::json!({ "type": "ephemeral", "room_id": m.room_id, "user_id": m.user_id, "body": body }),
                ),
            ),
            _ => {}
        }
    }
}

/// Changes a presence window tells at most (the channel holds up to 10,000 anyway).
const MAX_PRESENCE_BATCH: usize = 10_000;

/// Tells presence changes to clients in order, one window at a time (ADR 19): the first
/// change after a quiet window at once, the changes that arrive meanwhile together when the
/// window ends. A task of its own, as it queries.
async fn notify_in_windows(
    hub: Arc<Hub>,
    presence: Arc<Presence>,
    mut changes: tokio::sync::mpsc::Receiver<presence::Change>,
    window: Duration,
) {
    while let Some(first) = changes.recv().await {
        let started = tokio::time::Instant::now();
        let mut batch = vec![first];
        while batch.len() < MAX_PRESENCE_BATCH
            && let Ok(c) = changes.try_recv()
        {
            batch.push(c);
        }
        presence.notify(&hub, batch).await;
        tokio::time::sleep_until(started + window).await;
    }
}

async fn presence_loop(
    hub: Arc<Hub>,
    presence: Arc<Presence>,
    mut announcements: async_nats::Subscriber,
    heartbeat: Duration,
    timeout: Duration,
) {
    let mut beat = tokio::time::interval(heartbeat);
    let mut sweep = tokio::time::interval((timeout / 4).max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = beat.tick() => presence.heartbeat(&hub).await,
            _ = sweep.tick() => presence.sweep(),
            msg = announcements.next() => match msg {
                Some(m) => presence.on_message(&m.payload),
                None => break,
            },
        }
    }
}
