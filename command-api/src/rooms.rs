//! Room commands: one in-process actor per active room serialises the commands of
//! that room, decides them against a cached state, and appends what it decides.
//!
//! Why an actor: a hot room with 50 writers would otherwise spend its time in
//! optimistic-concurrency retries. The actor drains whatever is queued for its room,
//! decides each command in order against the state folded so far, and hands one
//! append per command to the group committer with chained expected versions, so a
//! burst of N messages into one room costs one transaction, not N.
//!
//! Other command-api replicas may write to the same room. The expected version in
//! every append catches that: on a conflict the actor drops its cache, reloads the
//! stream and decides the affected commands again (bounded attempts). A room that saw a
//! conflict keeps a [`Checkpoint`], so the next reload reads only what came after it.

use chrono::Utc;
use eventlog::{
    AppendError, AppendRequest, CLIENT_MSG_ID_KEY, EventStore, ExpectedVersion, IdempotencyClaim,
    IdempotencyRecord, IdempotencyScope, IndexedField, NewEvent, RecordedEvent, StoreError,
};
use events::room::{self, RoomCommand, RoomError, RoomEvent, RoomState};
use events::{AttachmentId, RoomId, StoredEvent, UserId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::idempotency::{Idem, key_hash, message_fingerprint, message_key};
use crate::message_keys::MessageKeys;

/// Commands one actor takes from its queue in one round.
const MAX_ROUND: usize = 512;
/// Rounds a command may be retried after conflicts before the client is told to retry.
const MAX_ATTEMPTS: u32 = 5;
/// An actor with nothing to do for this long gives its memory back.
const IDLE_RETIRE: Duration = Duration::from_secs(300);
const QUEUE: usize = 4096;
/// Events a contended room's [`Checkpoint`] may fall behind before it is taken again: a
/// reload after a conflict reads at most this many events plus what others wrote since.
const CHECKPOINT_EVERY: i64 = 1024;
const READ_PAGE: i64 = 10_000;
/// Messages whose facts (author, edits, reactions, deleted) an actor keeps in memory, newest
/// first; a command about an older one reads that message's events from the log's index
/// (ADR 18). So an actor's memory is bounded whatever its room's history.
pub const MESSAGES_KEPT: usize = 1024;
/// `client_msg_id`s an actor keeps in memory, newest first, to answer a retry at once. An
/// older key is refused by the log's unique index ([`CLIENT_MSG_ID_KEY`]) when its retry is
/// appended, and the actor then reads the message it produced.
pub const MESSAGE_KEYS_KEPT: usize = 4096;

/// What an accepted command did: the outcome the route renders.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    /// The room the events belong to (for a retried room creation: the room the first
    /// attempt created).
    pub room_id: RoomId,
    /// The events the command appended, or, for a retry, those its first attempt appended;
    /// empty when it changed nothing.
    pub events: Vec<RoomEvent>,
    /// The room stream's version after the command.
    pub version: i64,
    /// The log position of the command's last event (`None` when it appended nothing): a
    /// read-your-writes `min_position`.
    pub position: Option<i64>,
}

/// A command for one room, from one user.
pub struct Submission {
    pub actor: UserId,
    /// Decided together against the same state and appended atomically.
    pub cmds: Vec<RoomCommand>,
    pub idempotency: Option<Idem>,
    pub correlation_id: Uuid,
}

/// Why a room command was not carried out. Failures of the log are shared by every command
/// of the round they hit, hence the `Arc`s.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] RoomError),
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    #[error("too much contention on this room")]
    Busy,
    #[error("the room's actor is not running (shutting down)")]
    ActorGone,
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the room's log holds an event this version cannot read")]
    Decode(#[source] Arc<DecodeError>),
    #[error("{stream_id} has no event at version {version}")]
    MissingEvent { stream_id: String, version: i64 },
    #[error("an event of this command cannot be encoded")]
    Encode(#[source] Arc<serde_json::Error>),
    #[error("personal values of this command cannot be sealed or opened")]
    Seal(#[source] Arc<vault::VaultError>),
}

/// An event of a room's stream that could not be read or written as a [`RoomEvent`].
#[derive(Debug, thiserror::Error)]
#[error("event {event_id} at position {position} ({stream_id} v{version})")]
pub struct DecodeError {
    pub event_id: Uuid,
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    #[source]
    pub source: events::stored::DecodeError,
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        CommandError::Store(Arc::new(e))
    }
}

enum Job {
    Submit(
        Box<Submission>,
        oneshot::Sender<Result<Committed, CommandError>>,
    ),
    IsMember(UserId, oneshot::Sender<Result<(), CommandError>>),
}

type Registry = Arc<Mutex<HashMap<RoomId, (u64, mpsc::Sender<Job>)>>>;

/// Entry point for every room command.
#[derive(Clone)]
pub struct RoomCommands<S: EventStore + Clone> {
    store: S,
    keyring: Arc<vault::Keyring>,
    actors: Registry,
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Counts the rooms read again after a failed append, when set ([`Self::counting_reloads`]).
    reloads: Option<prometheus::IntCounter>,
}

impl<S: EventStore + Clone> RoomCommands<S> {
    /// Appends to `store`, sealing personal values with `keyring` (ADR 23).
    pub fn new(store: S, keyring: Arc<vault::Keyring>) -> Self {
        Self {
            store,
            keyring,
            actors: Arc::default(),
            generation: Arc::default(),
            reloads: None,
        }
    }

    /// Counts in `counter` every time an actor reads its room again because an append failed
    /// (another replica wrote to the room, or a retried key was older than the actor
    /// remembers): `chat_room_reloads_total`.
    pub fn counting_reloads(mut self, counter: prometheus::IntCounter) -> Self {
        self.reloads = Some(counter);
        self
    }

    /// Decides and appends `sub` against room `room_id`; the reply is sent only
    /// after the events are committed.
    pub async fn submit(
        &self,
        room_id: RoomId,
        sub: Submission,
    ) -> Result<Committed, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(room_id, Job::Submit(Box::new(sub), tx)).await?;
        rx.await.map_err(|_| CommandError::ActorGone)?
    }

    /// Succeeds when `user` is a member of the room now (read from the log, not a
    /// projection); otherwise the error a non-member gets for any command.
    pub async fn require_member(&self, room_id: RoomId, user: UserId) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(room_id, Job::IsMember(user, tx)).await?;
        rx.await.map_err(|_| CommandError::ActorGone)?
    }

    async fn send(&self, room_id: RoomId, mut job: Job) -> Result<(), CommandError> {
        // An actor may be retiring at this very moment; the second try gets a new one.
        for _ in 0..2 {
            let sender = self.actor_for(room_id);
            match sender.send(job).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(j)) => job = j,
            }
        }
        Err(CommandError::ActorGone)
    }

    fn actor_for(&self, room_id: RoomId) -> mpsc::Sender<Job> {
        let mut map = self.actors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = map.get(&room_id)
            && !s.is_closed()
        {
            return s.clone();
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        map.insert(room_id, (generation, tx.clone()));
        let actor = RoomActor {
            room_id,
            stream_id: room_id.stream_id(),
            store: self.store.clone(),
            keyring: self.keyring.clone(),
            rx,
            state: None,
            version: 0,
            message_keys: MessageKeys::default(),
            registry: self.actors.clone(),
            generation,
            reloads: self.reloads.clone(),
            contended: false,
            checkpoint: None,
        };
        tokio::spawn(actor.run());
        tx
    }

    /// Number of live room actors (for metrics).
    pub fn active_rooms(&self) -> usize {
        self.actors.lock().map(|m| m.len()).unwrap_or(0)
    }
}

struct Pending {
    sub: Box<Submission>,
    reply: oneshot::Sender<Result<Committed, CommandError>>,
    attempts: u32,
    /// Its `client_msg_id` is in the log (its append hit [`CLIENT_MSG_ID_KEY`]): read the
    /// message it produced before deciding again.
    key_in_log: bool,
}

enum Planned {
    /// Appended as request `usize` of this round; answered with this outcome
    /// (plus its `position`) once committed.
    Append(usize, Pending, Committed),
    /// Answered without appending (a no-op or a domain rejection), in order.
    Answer(Result<Committed, CommandError>, Pending),
    /// Shares an idempotency key with an earlier command of this round: it is
    /// answered next round from the stored response.
    Follower(Pending),
}

/// The state and remembered keys of a room as of a committed `version`, from which a reload
/// after a failed append starts instead of the stream's first event. Kept only by an actor
/// whose room saw a failed append (another replica writes to it), so a room written by one
/// replica costs no copy.
struct Checkpoint {
    version: i64,
    state: RoomState,
    message_keys: MessageKeys,
}

struct RoomActor<S: EventStore> {
    room_id: RoomId,
    stream_id: String,
    store: S,
    keyring: Arc<vault::Keyring>,
    rx: mpsc::Receiver<Job>,
    /// `None` until loaded, and again after anything failed (reload from the log).
    state: Option<RoomState>,
    version: i64,
    /// Hash of the [`message_key`] of the newest messages that carried a `client_msg_id` →
    /// the stream version of its `MessageSent`; one that is here is answered from that event.
    /// A key that is not here was not used among the newest [`MESSAGE_KEYS_KEPT`]; if it was
    /// used before them, the log's unique index refuses the append and the key is read back
    /// ([`RoomActor::recall`]). Another replica that used the key meanwhile moved the stream
    /// past `version`, so the append fails its expected version, the state is reloaded, and
    /// the key is found then.
    message_keys: MessageKeys,
    registry: Registry,
    generation: u64,
    /// See [`RoomCommands::counting_reloads`].
    reloads: Option<prometheus::IntCounter>,
    /// Whether an append of this room failed since the actor started: it then keeps a
    /// [`Checkpoint`].
    contended: bool,
    checkpoint: Option<Checkpoint>,
}

impl<S: EventStore> RoomActor<S> {
    async fn run(mut self) {
        loop {
            let first = match tokio::time::timeout(IDLE_RETIRE, self.rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_) => {
                    if self.retire() {
                        // Serve anything that raced in before the queue closed.
                        let mut rest = Vec::new();
                        while let Ok(job) = self.rx.try_recv() {
                            rest.push(job);
                        }
                        if !rest.is_empty() {
                            self.round(rest).await;
                        }
                        return;
                    }
                    continue;
                }
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_ROUND {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.round(jobs).await;
        }
    }

    fn retire(&mut self) -> bool {
        let mut map = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if !self.rx.is_empty() {
            return false;
        }
        if map
            .get(&self.room_id)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            map.remove(&self.room_id);
        }
        self.rx.close();
        true
    }

    async fn round(&mut self, jobs: Vec<Job>) {
        let mut queue = VecDeque::new();
        let mut checks = Vec::new();
        for job in jobs {
            match job {
                Job::Submit(sub, reply) => queue.push_back(Pending {
                    sub,
                    reply,
                    attempts: 0,
                    key_in_log: false,
                }),
                Job::IsMember(user, reply) => checks.push((user, reply)),
            }
        }
        if !checks.is_empty() {
            let res = self.catch_up().await;
            for (user, reply) in checks {
                let answer = match (&res, &self.state) {
                    (Ok(()), Some(state)) => state
                        .require_member(user)
                        .map(|_| ())
                        .map_err(CommandError::from),
                    (Err(e), _) => Err(e.clone()),
                    (Ok(()), None) => Err(CommandError::ActorGone),
                };
                let _ = reply.send(answer);
            }
        }
        while !queue.is_empty() {
            queue = self.attempt(queue).await;
        }
        self.trim();
        self.take_checkpoint();
    }

    /// After a round of a contended room whose appends all committed (the state is the
    /// log's as of `version`), and only when the last checkpoint is far enough behind.
    fn take_checkpoint(&mut self) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let due = self
            .checkpoint
            .as_ref()
            .is_none_or(|c| self.version - c.version >= CHECKPOINT_EVERY);
        if self.contended && due {
            self.checkpoint = Some(Checkpoint {
                version: self.version,
                state: state.clone(),
                message_keys: self.message_keys.clone(),
            });
        }
    }

    /// Forgets the oldest message facts and keys beyond what an actor keeps.
    fn trim(&mut self) {
        if let Some(state) = self.state.as_mut() {
            state.trim_messages(MESSAGES_KEPT);
        }
        self.message_keys.trim(MESSAGE_KEYS_KEPT);
    }

    /// Reads back from the log what the queued commands need and the actor no longer
    /// keeps: the events of the messages they name, and the messages produced by the
    /// `client_msg_id`s the log refused as used. One indexed query each, for the whole round.
    async fn recall(&mut self, queue: &VecDeque<Pending>) -> Result<(), CommandError> {
        let Some(state) = self.state.as_ref() else {
            return Ok(());
        };
        let mut messages: Vec<String> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for p in queue {
            for cmd in &p.sub.cmds {
                if let Some(id) = cmd.message_ref()
                    && state.lacks_message(id)
                {
                    messages.push(id.to_string());
                }
            }
            if p.key_in_log
                && let Some(i) = &p.sub.idempotency
                && i.from_message
                && self.message_keys.get(key_hash(&i.key)).is_none()
            {
                keys.extend(p.sub.cmds.iter().filter_map(|c| match c {
                    RoomCommand::SendMessage {
                        client_msg_id: Some(c),
                        ..
                    } => Some(c.clone()),
                    _ => None,
                }));
            }
        }
        if !messages.is_empty() {
            let events = self.read_by(IndexedField::MessageId, messages).await?;
            if let Some(state) = self.state.as_mut() {
                state.learn_message(events.iter().map(|(_, ev)| ev));
            }
        }
        if !keys.is_empty() {
            for (version, ev) in self.read_by(IndexedField::ClientMsgId, keys).await? {
                if let RoomEvent::MessageSent {
                    sender_id,
                    client_msg_id: Some(c),
                    ..
                } = ev
                {
                    self.message_keys
                        .insert(key_hash(&message_key(sender_id, &c)), version);
                }
            }
        }
        Ok(())
    }

    /// The room's events up to the actor's version whose `field` is one of `values`, with
    /// their versions: one indexed query.
    async fn read_by(
        &self,
        field: IndexedField,
        mut values: Vec<String>,
    ) -> Result<Vec<(i64, RoomEvent)>, CommandError> {
        values.sort_unstable();
        values.dedup();
        let records = self
            .store
            .read_stream_by_field(&self.stream_id, field, &values, self.version)
            .await?;
        records
            .iter()
            .map(|rec| Ok((rec.version, decode(rec)?)))
            .collect()
    }

    /// One pass over the queued commands; returns those to run again.
    async fn attempt(&mut self, queue: VecDeque<Pending>) -> VecDeque<Pending> {
        // A loaded state is trusted: if another replica wrote since, the expected
        // version of the append says so, and the state is reloaded then.
        if self.state.is_none()
            && let Err(e) = self.catch_up().await
        {
            for p in queue {
                let _ = p.reply.send(Err(e.clone()));
            }
            return VecDeque::new();
        }
        if let Err(e) = self.recall(&queue).await {
            for p in queue {
                let _ = p.reply.send(Err(e.clone()));
            }
            return VecDeque::new();
        }
        let queue = match self.answer_stored(queue).await {
            Ok(q) => q,
            Err(()) => return VecDeque::new(),
        };
        let queue = self.prepare_sealing(queue).await;
        let (plan, requests) = self.plan(queue);
        // In order: each request expects the version the one before it leaves.
        let results = self.store.append_in_order(requests).await;
        self.settle(plan, results)
    }

    /// Loads the data keys the queued commands' personal values will be sealed under: their
    /// authors'. A command whose author was erased is refused.
    async fn prepare_sealing(&self, queue: VecDeque<Pending>) -> VecDeque<Pending> {
        let Some(state) = self.state.as_ref() else {
            return queue;
        };
        let owners: Vec<Uuid> = queue
            .iter()
            .flat_map(|p| {
                p.sub
                    .cmds
                    .iter()
                    .filter_map(|c| author_of(state, p.sub.actor, c))
            })
            .map(|u| u.0)
            .collect();
        if owners.is_empty() {
            return queue;
        }
        match self.keyring.prepare_sealing(owners.iter().copied()).await {
            Ok(()) => queue,
            Err(vault::VaultError::Erased(erased)) => {
                // Only the erased author's commands are refused; the others go on.
                let (refused, rest): (VecDeque<Pending>, VecDeque<Pending>) =
                    queue.into_iter().partition(|p| {
                        p.sub.cmds.iter().any(|c| {
                            author_of(state, p.sub.actor, c).is_some_and(|a| a.0 == erased)
                        })
                    });
                let error = Arc::new(vault::VaultError::Erased(erased));
                for p in refused {
                    let _ = p.reply.send(Err(CommandError::Seal(error.clone())));
                }
                rest
            }
            Err(e) => {
                let error = Arc::new(e);
                for p in queue {
                    let _ = p.reply.send(Err(CommandError::Seal(error.clone())));
                }
                VecDeque::new()
            }
        }
    }

    /// Answers commands whose idempotency key is already used: header keys from
    /// `idempotency_keys` (then the events their record points at), `client_msg_id`s from
    /// their `MessageSent` event in the log.
    async fn answer_stored(&self, queue: VecDeque<Pending>) -> Result<VecDeque<Pending>, ()> {
        let mut by_scope: HashMap<&IdempotencyScope, Vec<String>> = HashMap::new();
        // Per queued command, in order: the version of the `MessageSent` that used its
        // `client_msg_id`, if one did.
        let mut sent_at: Vec<Option<i64>> = Vec::with_capacity(queue.len());
        for p in &queue {
            let mut version = None;
            match &p.sub.idempotency {
                Some(i) if i.from_message => {
                    version = self.message_keys.get(key_hash(&i.key));
                }
                Some(i) => by_scope.entry(&i.scope).or_default().push(i.key.clone()),
                None => {}
            }
            sent_at.push(version);
        }
        if by_scope.is_empty() && sent_at.iter().all(Option::is_none) {
            return Ok(queue);
        }
        let found = self.stored_outcomes(by_scope, &sent_at).await;
        let (records, sent) = match found {
            Ok(found) => found,
            Err(e) => {
                for p in queue {
                    let _ = p.reply.send(Err(e.clone()));
                }
                return Err(());
            }
        };
        let mut rest = VecDeque::new();
        for (p, version) in queue.into_iter().zip(sent_at) {
            let answer = match &p.sub.idempotency {
                Some(i) if i.from_message => version
                    .and_then(|v| sent.get(&v))
                    .and_then(|(rec, ev)| self.replay_sent(i, rec, ev)),
                Some(i) => {
                    records
                        .get(&(i.scope.clone(), i.key.clone()))
                        .map(|(record, committed)| {
                            if record.fingerprint == i.fingerprint {
                                Ok(committed.clone())
                            } else {
                                Err(CommandError::IdempotencyMismatch)
                            }
                        })
                }
                None => None,
            };
            match answer {
                Some(answer) => {
                    let _ = p.reply.send(answer);
                }
                None => rest.push_back(p),
            }
        }
        Ok(rest)
    }

    /// The records of the header keys in `by_scope` with the outcomes they point at, and the
    /// `MessageSent` events at the versions in `sent_at`.
    #[allow(clippy::type_complexity)]
    async fn stored_outcomes(
        &self,
        by_scope: HashMap<&IdempotencyScope, Vec<String>>,
        sent_at: &[Option<i64>],
    ) -> Result<
        (
            HashMap<(IdempotencyScope, String), (IdempotencyRecord, Committed)>,
            HashMap<i64, (RecordedEvent, RoomEvent)>,
        ),
        CommandError,
    > {
        let mut records = HashMap::new();
        for (scope, keys) in by_scope {
            for (key, record) in self.store.lookup_idempotency(scope, &keys).await? {
                let committed = self.read_outcome(&record).await?;
                records.insert((scope.clone(), key), (record, committed));
            }
        }
        let mut sent = HashMap::new();
        for &version in sent_at.iter().flatten() {
            if sent.contains_key(&version) {
                continue;
            }
            let mut page = self
                .store
                .read_stream(&self.stream_id, version - 1, 1)
                .await?;
            // The actor saw this version in its own stream; a log without it is corrupt.
            let mut rec = page.pop().filter(|r| r.version == version).ok_or_else(|| {
                CommandError::MissingEvent {
                    stream_id: self.stream_id.clone(),
                    version,
                }
            })?;
            // A retry is compared with the message's body: opened, unlike the state's events.
            self.keyring
                .open_event(&mut rec)
                .await
                .map_err(|e| CommandError::Seal(Arc::new(e)))?;
            let ev = decode(&rec)?;
            sent.insert(version, (rec, ev));
        }
        Ok((records, sent))
    }

    /// The outcome a command had, read back from the events its idempotency record points at.
    async fn read_outcome(&self, record: &IdempotencyRecord) -> Result<Committed, CommandError> {
        let records = self
            .store
            .read_all(record.first_position - 1, record.event_count())
            .await?;
        let mut events = Vec::with_capacity(records.len());
        for rec in &records {
            events.push(decode(rec)?);
        }
        Ok(match records.last() {
            Some(last) => Committed {
                room_id: RoomId::from_stream_id(&last.stream_id).unwrap_or(self.room_id),
                events,
                version: last.version,
                position: Some(last.position),
            },
            None => Committed {
                room_id: self.room_id,
                events,
                version: self.version,
                position: None,
            },
        })
    }

    /// The outcome of a retried `client_msg_id`: the `MessageSent` it produced, with its
    /// version and position, as the first attempt answered. `None` if the event is not that
    /// message after all (a hash collision).
    fn replay_sent(
        &self,
        idem: &Idem,
        rec: &RecordedEvent,
        ev: &RoomEvent,
    ) -> Option<Result<Committed, CommandError>> {
        let RoomEvent::MessageSent {
            sender_id,
            body,
            reply_to,
            client_msg_id: Some(client_msg_id),
            attachments,
            ..
        } = ev
        else {
            return None;
        };
        if message_key(*sender_id, client_msg_id) != idem.key {
            return None;
        }
        let ids: Vec<AttachmentId> = attachments.iter().map(|a| a.attachment_id).collect();
        if message_fingerprint(body.as_str(), *reply_to, &ids) != idem.fingerprint {
            return Some(Err(CommandError::IdempotencyMismatch));
        }
        Some(Ok(Committed {
            room_id: self.room_id,
            events: vec![ev.clone()],
            version: rec.version,
            position: Some(rec.position),
        }))
    }

    /// Decides every command in order against the state as it will be after the
    /// ones before it, and builds one append request per command with events.
    fn plan(&mut self, queue: VecDeque<Pending>) -> (Vec<Planned>, Vec<AppendRequest>) {
        let mut plan = Vec::with_capacity(queue.len());
        let mut requests = Vec::new();
        let mut claimed: HashSet<(IdempotencyScope, String)> = HashSet::new();
        let now = Utc::now();
        let Some(state) = self.state.as_mut() else {
            return (plan, requests);
        };
        for p in queue {
            if let Some(i) = &p.sub.idempotency
                && !claimed.insert((i.scope.clone(), i.key.clone()))
            {
                plan.push(Planned::Follower(p));
                continue;
            }
            // Commands of one submission are independent edits (e.g. name and topic)
            // and are all decided against the same state.
            let mut events = Vec::new();
            let mut rejected = None;
            for cmd in p.sub.cmds.iter().cloned() {
                match room::decide(state, p.sub.actor, cmd) {
                    Ok(mut evs) => events.append(&mut evs),
                    Err(e) => {
                        rejected = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = rejected {
                plan.push(Planned::Answer(Err(e.into()), p));
                continue;
            }
            if events.is_empty() {
                let unchanged = Committed {
                    room_id: self.room_id,
                    events,
                    version: self.version,
                    position: None,
                };
                plan.push(Planned::Answer(Ok(unchanged), p));
                continue;
            }
            let expected = if self.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(self.version)
            };
            let new_version = self.version + events.len() as i64;
            let mut new_events = Vec::with_capacity(events.len());
            let mut encode_error = None;
            for e in &events {
                match e.to_stored() {
                    Ok((event_type, schema_version, mut data)) => {
                        if let Some(owner) = owner_of(state, e)
                            && let Err(err) = self.keyring.seal(&event_type, &mut data, owner.0)
                        {
                            encode_error = Some(CommandError::Seal(Arc::new(err)));
                        }
                        new_events.push(NewEvent {
                            event_id: Uuid::now_v7(),
                            event_type,
                            schema_version,
                            data,
                            occurred_at: now,
                            actor_id: Some(p.sub.actor.0),
                            correlation_id: p.sub.correlation_id,
                            causation_id: None,
                        });
                    }
                    Err(e) => encode_error = Some(CommandError::Encode(Arc::new(e))),
                }
            }
            if let Some(err) = encode_error {
                plan.push(Planned::Answer(Err(err), p));
                continue;
            }
            for (i, e) in events.iter().enumerate() {
                if let RoomEvent::MessageSent {
                    sender_id,
                    client_msg_id: Some(c),
                    ..
                } = e
                {
                    self.message_keys.insert(
                        key_hash(&message_key(*sender_id, c)),
                        self.version + i as i64 + 1,
                    );
                }
                *state = room::evolve(std::mem::take(state), e);
            }
            self.version = new_version;
            // A `client_msg_id` is recorded by the event itself; only header keys need a row.
            let idempotency = p
                .sub
                .idempotency
                .iter()
                .filter(|i| !i.from_message)
                .map(|i| IdempotencyClaim {
                    scope: i.scope.clone(),
                    key: i.key.clone(),
                    fingerprint: i.fingerprint.clone(),
                })
                .collect();
            requests.push(AppendRequest {
                stream_id: self.stream_id.clone(),
                stream_type: RoomEvent::STREAM_TYPE.to_owned(),
                expected,
                events: new_events,
                idempotency,
            });
            let committed = Committed {
                room_id: self.room_id,
                events,
                version: new_version,
                position: None,
            };
            plan.push(Planned::Append(requests.len() - 1, p, committed));
        }
        (plan, requests)
    }

    /// Answers in order; from the first failed append on, everything is run again
    /// against a freshly loaded state.
    fn settle(
        &mut self,
        plan: Vec<Planned>,
        results: Vec<Result<eventlog::Appended, AppendError>>,
    ) -> VecDeque<Pending> {
        let mut again = VecDeque::new();
        let mut failed = false;
        let mut results: Vec<Option<Result<eventlog::Appended, AppendError>>> =
            results.into_iter().map(Some).collect();
        for item in plan {
            match item {
                Planned::Follower(p) => requeue(&mut again, p),
                Planned::Answer(answer, p) => {
                    if failed {
                        requeue(&mut again, p);
                    } else {
                        let _ = p.reply.send(answer);
                    }
                }
                Planned::Append(i, p, mut committed) => {
                    let result = results.get_mut(i).and_then(Option::take);
                    match (failed, result) {
                        (false, Some(Ok(appended))) => {
                            committed.position = Some(appended.last_position);
                            let _ = p.reply.send(Ok(committed));
                        }
                        (_, Some(Err(AppendError::Store(e)))) if e.violates(CLIENT_MSG_ID_KEY) => {
                            // A retry of a key older than the actor remembers: answered next
                            // attempt from the message the key produced.
                            failed = true;
                            let mut p = p;
                            p.key_in_log = true;
                            requeue(&mut again, p);
                        }
                        (_, Some(Err(AppendError::Store(e)))) => {
                            failed = true;
                            let _ = p.reply.send(Err(e.into()));
                        }
                        (_, Some(Err(AppendError::ShuttingDown))) => {
                            failed = true;
                            let _ = p.reply.send(Err(CommandError::Busy));
                        }
                        _ => {
                            // A conflict (another writer), a duplicate key, or a
                            // request after a failure: decide again on fresh state.
                            failed = true;
                            requeue(&mut again, p);
                        }
                    }
                }
            }
        }
        if failed {
            // The state holds what was decided, not all committed: read it again.
            self.state = None;
            self.version = 0;
            self.contended = true;
            if let Some(reloads) = &self.reloads {
                reloads.inc();
            }
        }
        again
    }

    /// Loads the room on first use (or after a failed append: from the checkpoint if there
    /// is one) and folds in anything appended since (by another replica). Errors are shared
    /// by every reply of the round.
    async fn catch_up(&mut self) -> Result<(), CommandError> {
        let mut state = match (self.state.take(), &self.checkpoint) {
            (Some(state), _) => state,
            (None, Some(checkpoint)) => {
                self.version = checkpoint.version;
                self.message_keys = checkpoint.message_keys.clone();
                checkpoint.state.clone()
            }
            (None, None) => {
                self.version = 0;
                self.message_keys.clear();
                RoomState::default()
            }
        };
        loop {
            let page = self
                .store
                .read_stream(&self.stream_id, self.version, READ_PAGE)
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    self.version = 0;
                    return Err(e.into());
                }
            };
            let n = page.len() as i64;
            for rec in &page {
                match decode(rec) {
                    Ok(ev) => {
                        if let RoomEvent::MessageSent {
                            sender_id,
                            client_msg_id: Some(c),
                            ..
                        } = &ev
                        {
                            self.message_keys
                                .insert(key_hash(&message_key(*sender_id, c)), rec.version);
                        }
                        state = room::evolve(state, &ev);
                        self.version = rec.version;
                        // Bounded while a long stream is read, not only after.
                        if state.messages.len() >= 2 * MESSAGES_KEPT {
                            state.trim_messages(MESSAGES_KEPT);
                        }
                    }
                    Err(e) => {
                        self.version = 0;
                        return Err(e);
                    }
                }
            }
            self.message_keys.trim(MESSAGE_KEYS_KEPT);
            if n < READ_PAGE {
                break;
            }
        }
        state.trim_messages(MESSAGES_KEPT);
        self.state = Some(state);
        Ok(())
    }
}

fn requeue(again: &mut VecDeque<Pending>, mut p: Pending) {
    p.attempts += 1;
    if p.attempts >= MAX_ATTEMPTS {
        let _ = p.reply.send(Err(CommandError::Busy));
    } else {
        again.push_back(p);
    }
}

/// The author whose key will seal the personal values `cmd` writes: the sender of a message,
/// the author of an edited one (whoever edits it, the text is theirs).
fn author_of(state: &RoomState, actor: UserId, cmd: &RoomCommand) -> Option<UserId> {
    match cmd {
        RoomCommand::SendMessage { .. } => Some(actor),
        RoomCommand::EditMessage { message_id, .. } => state
            .messages
            .get(message_id)
            .and_then(|m| m.author)
            .or(Some(actor)),
        _ => None,
    }
}

/// The owner of the personal values of `event` (see [`author_of`]), read from `state` before
/// the event is folded into it.
fn owner_of(state: &RoomState, event: &RoomEvent) -> Option<UserId> {
    match event {
        RoomEvent::MessageSent { sender_id, .. } => Some(*sender_id),
        RoomEvent::MessageEdited {
            message_id,
            edited_by,
            ..
        } => state
            .messages
            .get(message_id)
            .and_then(|m| m.author)
            .or(Some(*edited_by)),
        _ => None,
    }
}

/// A room event of the log, for deciding: its personal values are not needed (a room's state
/// holds none), so they are not opened (ADR 23).
fn decode(rec: &RecordedEvent) -> Result<RoomEvent, CommandError> {
    let mut data = rec.data.clone();
    vault::open_blind(&rec.event_type, &mut data);
    RoomEvent::from_stored(&rec.event_type, rec.schema_version, data).map_err(|source| {
        CommandError::Decode(Arc::new(DecodeError {
            event_id: rec.event_id,
            position: rec.position,
            stream_id: rec.stream_id.clone(),
            version: rec.version,
            source,
        }))
    })
}
